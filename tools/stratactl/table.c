/*
 * The command table: every stratactl command, its options, positional
 * arguments, help text and examples. main.c dispatches from it, args.c
 * parses with it and --help prints it, so a command is added in one place.
 */
#include "tools/stratactl/ctl.h"

#define KIND_OPT {"kind", 1, "temporal|indefinite", "lock kind"}
#define OP_OPT(req) {"op", 1, "N", "the operation (holder) id" req}

const ctl_cmd ctl_cmds[] = {
    /* --- locks ------------------------------------------------------------------ */
    {"lock", "list", "[--op N] [--kind temporal|indefinite] [--prefix HEX] [--expired]",
     "list held locks with their decoded row keys, holders, ages and fencing tokens",
     "Columns: ROW (hex), DECODED (chunk <id> or block x,y,z for PyChunkedGraph hash-prefixed\n"
     "keys, the text of a printable key, else -), KIND, OP, ACQUIRED (UTC), LEFT (time until a temporal lock expires, on\n"
     "the server's clock; 'expired' or '-' for indefinite), TOKEN. A count line ends the table.",
     "stratactl lock list\n"
     "stratactl lock list --op 42 --kind indefinite\n"
     "stratactl lock list --prefix 0x1a2b --expired\n"
     "stratactl --json lock list | jq '.locks[].op'",
     {OP_OPT(""), KIND_OPT, {"prefix", 1, "HEX", "only rows beginning with these bytes (0x... or text)"},
      {"expired", 0, NULL, "only temporal locks whose TTL ran out but that are still recorded"}},
     0, 0, ctl_lock_list},
    {"lock", "acquire", "--op N [--kind temporal|indefinite] [--ttl 30s] [--wait 5s] KEY...",
     "lock rows for an operation, all or nothing",
     "Exit 0 with the fencing token when every row is now held by op N; exit 1 listing the\n"
     "conflicting holders otherwise. An indefinite lock needs an op created with Ops.Create.\n"
     "The time left shown (also for conflicts) is on this machine's clock: the answer carries\n"
     "no server time.",
     "stratactl lock acquire --op 42 0x1a2b0000000000000007\n"
     "stratactl lock acquire --op 42 --ttl 2m --wait 5s $(stratactl lock key --chunk 7)\n"
     "stratactl lock acquire --op 42 --kind indefinite 0x1a2b0000000000000007",
     {OP_OPT(" (required)"), KIND_OPT,
      {"ttl", 1, "DURATION", "lifetime of a temporal lock (default 30s)"},
      {"wait", 1, "DURATION", "wait this long for conflicting locks to go away (default 0)"}},
     1, -1, ctl_lock_acquire},
    {"lock", "renew", "--op N [--ttl 30s] KEY...", "extend an op's temporal locks",
     "Exit 1 when op N no longer holds every row (released, expired or taken by another op).\n"
     "The time left shown is on this machine's clock: the answer carries no server time.",
     "stratactl lock renew --op 42 --ttl 1m 0x1a2b0000000000000007",
     {OP_OPT(" (required)"), {"ttl", 1, "DURATION", "new lifetime from now (default 30s)"}},
     1, -1, ctl_lock_renew},
    {"lock", "release", "--op N [--privileged] (KEY...|--all)",
     "release an op's locks; --privileged frees rows whoever holds them",
     "Without --privileged only op N's locks are released. With --privileged (operator\n"
     "recovery) the rows are freed whoever holds them; --op is then optional and, when given,\n"
     "must match the holder. --all releases every lock op N holds (requires --op).\n"
     "Exit 1 when nothing was released.",
     "stratactl lock release --op 42 0x1a2b0000000000000007\n"
     "stratactl lock release --op 42 --all\n"
     "stratactl lock release --privileged 0x1a2b0000000000000007",
     {OP_OPT(""), {"privileged", 0, NULL, "operator release, whoever holds the rows"},
      {"all", 0, NULL, "every lock held by --op"}},
     0, -1, ctl_lock_release},
    {"lock", "key", "(--chunk ID | --block X Y Z)",
     "print the hash-prefixed row key of an L2 chunk or a block, in hex",
     "The key is PyChunkedGraph's: a 2-byte BLAKE2b prefix of the big-endian ids, then the ids.",
     "stratactl lock key --chunk 72057594037927937\n"
     "stratactl lock key --chunk 0x100000000000001\n"
     "stratactl lock key --block 1 2 3",
     {{"chunk", 1, "ID", "an L2 chunk id (decimal or 0x-hex)"},
      {"block", 3, "X Y Z", "block coordinates (decimal or 0x-hex)"}},
     0, 0, ctl_lock_key},
    /* --- ops ---------------------------------------------------------------------- */
    {"op", "show", "N", "show one operation: status, user, kind, times, lock scope", NULL,
     "stratactl op show 42\n"
     "stratactl --json op show 42",
     {{0}}, 1, 1, ctl_op_show},
    {"op", "list", "[--status S] [--limit N]",
     "list the newest operations, optionally only those with a status",
     "S is one of created, write_started, success, exception, write_failed. Shows the newest\n"
     "--limit matching ops (default 100) in id order. One Ops.List stream, newest first; the\n"
     "server applies the status filter.",
     "stratactl op list\n"
     "stratactl op list --status write_failed --limit 10",
     {{"status", 1, "S", "only ops with this status"},
      {"limit", 1, "N", "show at most N ops (default 100)"}},
     0, 0, ctl_op_list},
    {"op", "set-status", "N STATUS [--reason TEXT]",
     "set an operation's status by hand (operator recovery), with the reason recorded",
     "STATUS is one of created, write_started, success, exception, write_failed. For an op\n"
     "that crashed mid-edit and was repaired or rolled back by hand, so it does not stay\n"
     "WRITE_STARTED forever. The reason is kept with the op (op show prints it) until the next\n"
     "status change; without --reason an earlier reason is cleared. Prints the op after the\n"
     "change. It does not touch the op's locks: free them with lock release --op N --all.",
     "stratactl op set-status 42 write_failed --reason \"rolled back by hand, ticket 123\"\n"
     "stratactl op set-status 42 success --reason \"repaired with the edit tool\"",
     {{"reason", 1, "TEXT", "why (free text, up to 64 KiB), kept with the op"}},
     2, 2, ctl_op_set_status},
    {"op", "stuck", "[--min-age 10m]",
     "list ops that still hold a lock scope but did not succeed, oldest first", NULL,
     "stratactl op stuck\n"
     "stratactl op stuck --min-age 1h",
     {{"min-age", 1, "DURATION", "only ops created at least this long ago (default 0)"}},
     0, 0, ctl_op_stuck},
    {"op", "replay", "OP", "recover a crashed split op: finish it under its own id, or refuse",
     "Verifies that every row of the op's scope is still held indefinitely by the op (else\n"
     "refuses naming the rows: a second replay refuses). Then, when the op's result record is\n"
     "in the store (its commit landed), marks it SUCCESS and releases its locks; otherwise\n"
     "re-runs the split from the op's payload against the latest state under the same op id,\n"
     "its locks and the ids recorded on it, in one fenced commit, marks SUCCESS and releases.\n"
     "Progress goes to stderr as key=value lines. Exit 1 on any refusal or failure.",
     "stratactl op replay 42\n"
     "stratactl --json op replay 42",
     {{0}}, 1, 1, ctl_op_replay},
    {"downsample", "status", "--prefix PREFIX",
     "each strata-downsample worker's checkpoint of a volume against the latest generation",
     "Lists PREFIX.downsample/checkpoint/: per worker name, the checkpoint generation (every\n"
     "mip-0 change committed at or before it is in the coarser scales), the latest generation,\n"
     "BEHIND (latest - checkpoint, in generations; the worker's own commits count, so a\n"
     "caught-up worker shows 1 or 2 when it wrote last) and LAG_MS (how long the oldest\n"
     "generation after the checkpoint has been waiting; 0 when none). Both count the workers'\n"
     "own commits; the pyramid holds generation G exactly when CHECKPOINT >= G.",
     "stratactl downsample status --prefix seg/\n"
     "stratactl --json downsample status --prefix seg/",
     {{"prefix", 1, "PREFIX", "the volume's key prefix (required)"}}, 0, 0, ctl_downsample_status},
    /* --- kv -------------------------------------------------------------------------- */
    {"kv", "get", "KEY[@PIN]", "print a key's value (raw bytes; --json: base64)",
     "PIN is v<generation> (v0: the empty store before the first commit) or an RFC 3339 time,\n"
     "Z or +HH:MM (the newest generation committed at or before it). Text after the last '@'\n"
     "that is not a pin is a usage error: a key that contains '@' is given in hex (0x...) or\n"
     "after -- (kv get -- a@b). Exit 1 when the key does not exist at that version.",
     "stratactl kv get config/root\n"
     "stratactl kv get config/root@v12 > old.bin\n"
     "stratactl kv get 0x00ff@2026-11-21T10:00:00Z\n"
     "stratactl kv get config/root@2026-11-21T11:00:00+01:00\n"
     "stratactl kv get -- user@example.org",
     {{0}}, 1, 1, ctl_kv_get},
    {"kv", "put", "KEY [FILE]", "write a key from FILE (stdin when no FILE or '-')",
     "A key that contains '@' is given in hex (0x...) or after --, as for kv get, so that\n"
     "what kv put wrote kv get reads back.",
     "stratactl kv put config/root root.json\n"
     "echo -n hello | stratactl kv put greeting\n"
     "stratactl kv put -- user@example.org profile.json",
     {{0}}, 1, 2, ctl_kv_put},
    {"kv", "rm", "KEY", "delete a key",
     "Exit 1 when the key does not exist, or when it changed between the check and the delete.",
     "stratactl kv rm greeting", {{0}}, 1, 1, ctl_kv_rm},
    {"kv", "ls", "[PREFIX][@PIN] [--limit N]", "list keys in order, optionally under a prefix",
     "Keys are printed as they arrive. PIN as for kv get. --timeout bounds the wait for each\n"
     "part of the answer, not the whole listing.",
     "stratactl kv ls\n"
     "stratactl kv ls config/ --limit 10\n"
     "stratactl kv ls @v3\n"
     "stratactl kv ls config/@2026-11-21T10:00:00Z",
     {{"limit", 1, "N", "stop after N keys (default: all)"}}, 0, 1, ctl_kv_ls},
    {"kv", "versions", "[--limit N]", "list committed versions, newest first", NULL,
     "stratactl kv versions --limit 5",
     {{"limit", 1, "N", "show at most N versions (default: all)"}}, 0, 0, ctl_kv_versions},
    {"kv", "diff", "@PIN @PIN", "list the keys added, removed and modified between two versions",
     "Lines: '+ KEY' added, '- KEY' removed, '~ KEY' modified, going from the first version to\n"
     "the second. Built on Kv.Watch (which keys each generation changed) and Kv.BatchGet\n"
     "(their values at both versions), so a key changed and changed back is not listed.\n"
     "From @v0 (the empty store) it lists the keys at the other version with Kv.List instead,\n"
     "so it needs no history before that version (retention may have dropped it).\n"
     "On a terminal, progress is shown on stderr while the changes are collected. --timeout\n"
     "bounds the wait for each message and each call, not the whole command.",
     "stratactl kv diff @v3 @v7\n"
     "stratactl kv diff @2026-11-21T10:00:00Z @v12",
     {{0}}, 2, 2, ctl_kv_diff},
    /* --- server ------------------------------------------------------------------------ */
    {NULL, "health", "", "check that the server answers and is serving",
     "Exit 0 when SERVING, 1 when the server answers NOT_SERVING, 3 when it cannot be reached.",
     "stratactl health\n"
     "stratactl --addr 10.0.0.5:7420 --timeout 500ms health",
     {{0}}, 0, 0, ctl_health},
    {NULL, "stats", "[--watch [--interval DURATION] [--count N]]",
     "show server statistics: version, uptime, latest generation, calls, locks",
     "--watch refreshes a compact live view (like top) every --interval (default 1s):\n"
     "commit and call rates, mean group size, bytes written, cache hit ratio, locks held,\n"
     "publish lag, GC progress and the retained range; --count N stops after N views.",
     "stratactl stats\nstratactl --json stats\nstratactl stats --watch",
     {{"watch", 0, NULL, "refresh a live view until interrupted"},
      {"interval", 1, "DURATION", "between views with --watch (default 1s)"},
      {"count", 1, "N", "with --watch: stop after N views"}}, 0, 0, ctl_stats},
    /* --- security (docs/security.md) -------------------------------------------------- */
    {"auth", "hash", "[--generate] NAME ROLE",
     "print a line of strata-server's --auth-file for a token read from stdin",
     "The line is 'NAME ROLE SHA256': the token's SHA-256, never the token. ROLE is reader,\n"
     "writer or operator. The token is the first line of stdin; --generate makes a new random\n"
     "one instead and prints it on stderr (give it to the client: it is stored nowhere).\n"
     "Append the line to the auth file and send strata-server SIGHUP to load it.",
     "stratactl auth hash --generate alice writer >> /etc/strata/auth\n"
     "printf '%s\\n' \"$TOKEN\" | stratactl auth hash ops-oncall operator\n"
     "kill -HUP $(pidof strata-server)",
     {{"generate", 0, NULL, "make a new random token (64 hex digits)"}}, 2, 2, ctl_auth_hash},
    {NULL, "audit", "[--data-dir DIR | --file PATH] [--since T]",
     "show the server's audit log: privileged and operator calls, refused calls, auth reloads",
     "Reads DIR/audit.log (default ./strata-data) on this machine. A 'call' record comes in two\n"
     "phases: 'intent' (written durably before the action) and 'outcome'. T is a duration back\n"
     "from now (30m, 2h) or a time as for pins (2026-12-06T22:00:00Z, 2026-12-06T23:00:00+01:00;\n"
     "UTC: 2026-12-06, 2026-12-06 22:00:00). A last line torn by a crash is skipped with a note\n"
     "on stderr.",
     "stratactl audit --data-dir /var/lib/strata --since 1h\n"
     "stratactl --json audit --file /var/lib/strata/audit.log | jq '.records[]'",
     {{"data-dir", 1, "DIR", "the server's --data-dir (default ./strata-data)"},
      {"file", 1, "PATH", "the audit log itself"},
      {"since", 1, "T", "only records at or after T"}},
     0, 0, ctl_audit},
    /* --- coordinator mode ---------------------------------------------------------------- */
    {NULL, "writers", "[--all]", "list coordinator-mode writers: leases, files, bytes committed",
     "Columns: ID, NAME, STATE (live, or ended: expired or unregistered), REGISTERED (UTC),\n"
     "LEASE LEFT (on this machine's clock against the server's expiry), FILES registered,\n"
     "BYTES committed by reference, LAST GEN (newest generation with one of its references),\n"
     "PREFIX (where its files live, relative to the store directory). Ended writers are shown\n"
     "with --all until GC has collected their files.",
     "stratactl writers\n"
     "stratactl writers --all\n"
     "stratactl --json writers --all | jq '.writers[] | select(.live)'",
     {{"all", 0, NULL, "also writers whose lease ended (until GC collects them)"}}, 0, 0,
     ctl_writers},
    {NULL, "gc", "[--dry-run | --status]",
     "remove files no retained version references",
     "Files under the prefix of a writer whose lease ended (expired or unregistered) that no\n"
     "retained version references are removed, and the writer leaves the registry; and\n"
     "Strata's own data files and numbered manifests that no retained version references,\n"
     "once unreferenced for the server's --gc-grace. Files of live writers, referenced files\n"
     "and the commit log are never removed. The server also runs GC every --gc-interval.\n"
     "--dry-run lists what would go and changes nothing; --status shows GC's progress since\n"
     "the server started and the retained range. Waits up to --timeout plus one hour.",
     "stratactl gc --dry-run\n"
     "stratactl gc\n"
     "stratactl gc --status\n"
     "stratactl --json gc | jq .bytes_removed",
     {{"dry-run", 0, NULL, "report what would be removed; remove nothing"},
      {"status", 0, NULL, "show GC progress and the retained range; remove nothing"}}, 0, 0, ctl_gc},
    {"retention", "show", "",
     "the retention policy, holds, and the retained range",
     "Shows the policy (keep-all, keep-versions N, keep-for DURATION), the explicit holds,\n"
     "what pins older versions (ops not SUCCESS, live watchers) and the retained range.",
     "stratactl retention show", {{0}}, 0, 0, ctl_retention_show},
    {"retention", "set", "--keep-versions N | --keep-for DURATION | --keep-all",
     "set the retention policy (persisted; default keep-all)",
     "Versions outside the policy are dropped from the version tree by the next commits and\n"
     "their files removed by GC after the grace period. Never dropped: the latest version,\n"
     "the base version of every op not SUCCESS, the position of every live Watch, and held\n"
     "versions (retention hold). A read of a dropped version is OUT_OF_RANGE.",
     "stratactl retention set --keep-versions 1000\n"
     "stratactl retention set --keep-for 30d\n"
     "stratactl retention set --keep-all",
     {{"keep-versions", 1, "N", "keep the newest N versions"},
      {"keep-for", 1, "DURATION", "keep the versions of the last DURATION (and the one in effect then)"},
      {"keep-all", 0, NULL, "keep every version (the default)"}}, 0, 0, ctl_retention_set},
    {"retention", "hold", "vN [--reason TEXT]",
     "never drop version N while the hold lasts",
     "Refused with OUT_OF_RANGE when vN is already outside the retained range.",
     "stratactl retention hold v123 --reason \"audit 2026-12\"",
     {{"reason", 1, "TEXT", "why (shown by retention show)"}}, 1, 1, ctl_retention_hold},
    {"retention", "release", "vN",
     "remove the hold on version N",
     NULL,
     "stratactl retention release v123", {{0}}, 1, 1, ctl_retention_release},
    {NULL, "check", "",
     "verify every version from the root down and list unreferenced files",
     "Checks node checksums and structure, heights, subtree statistics, every out-of-line\n"
     "value's range inside its file and, in Strata's own data files, its CRC-32C; lists the\n"
     "files under d/ that no version references (writer files and files of no known writer;\n"
     "those of live writers may still be committed and are not orphans) and referenced files\n"
     "that are missing. Exit 0 when all is well, 1 on any error, missing file or orphan.\n"
     "Waits up to --timeout plus one hour.",
     "stratactl check\n"
     "stratactl --json check | jq .orphans",
     {{0}}, 0, 0, ctl_check},
    {0},
};
