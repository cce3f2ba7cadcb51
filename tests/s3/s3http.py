"""A minimal S3 client for the tests and benchmarks: AWS Signature Version 4 over
http.client, for the few calls they make themselves (create a bucket, put, get, head,
delete, list a prefix). The store under test has its own client (storage/, libcurl);
this one is independent of it so the tests do not check the store with itself.

    s3 = S3.from_env()            # STRATA_S3_ENDPOINT, AWS_* (tests/s3/rgw.py's env file)
    s3.put("bucket", "key", b"v"); s3.list("bucket", "prefix/")
"""
import datetime
import hashlib
import hmac
import http.client
import os
import urllib.parse
import xml.etree.ElementTree as ET

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
_EMPTY_SHA = hashlib.sha256(b"").hexdigest()


def _q(s, safe="-_.~"):
    return urllib.parse.quote(s, safe=safe)


class S3Error(Exception):
    def __init__(self, status, body, what):
        super().__init__("%s: HTTP %d %s" % (what, status, body[:300]))
        self.status = status
        self.body = body


class S3:
    def __init__(self, endpoint, access_key, secret_key, region="us-east-1", timeout=30):
        u = urllib.parse.urlsplit(endpoint)
        if u.scheme != "http":
            raise ValueError("only http:// endpoints: %s" % endpoint)
        self.host, self.port = u.hostname, u.port or 80
        self.access_key, self.secret_key, self.region = access_key, secret_key, region
        self.timeout = timeout

    @classmethod
    def from_env(cls, env=None):
        e = env if env is not None else os.environ
        return cls(e["STRATA_S3_ENDPOINT"], e["AWS_ACCESS_KEY_ID"], e["AWS_SECRET_ACCESS_KEY"],
                   e.get("AWS_REGION", "us-east-1"))

    def _sign(self, method, path, query, headers, payload_sha):
        now = datetime.datetime.now(datetime.timezone.utc)
        amzdate, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        headers = dict(headers)
        headers["host"] = "%s:%d" % (self.host, self.port)
        headers["x-amz-date"] = amzdate
        headers["x-amz-content-sha256"] = payload_sha
        lower = {k.lower(): str(v).strip() for k, v in headers.items()}
        signed = ";".join(sorted(lower))
        canon_headers = "".join("%s:%s\n" % (k, lower[k]) for k in sorted(lower))
        canon_query = "&".join("%s=%s" % (_q(k), _q(v)) for k, v in sorted(query.items()))
        canon = "\n".join([method, _q(path, safe="/-_.~"), canon_query, canon_headers, signed,
                           payload_sha])
        scope = "%s/%s/s3/aws4_request" % (day, self.region)
        to_sign = "\n".join(["AWS4-HMAC-SHA256", amzdate, scope,
                             hashlib.sha256(canon.encode()).hexdigest()])
        k = ("AWS4" + self.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            k = hmac.new(k, part.encode(), hashlib.sha256).digest()
        sig = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, "
                                    "Signature=%s" % (self.access_key, scope, signed, sig))
        return headers, canon_query

    def request(self, method, path, query=None, body=b"", headers=None):
        """(status, response headers as a lower-cased dict, body bytes)."""
        query = query or {}
        sha = hashlib.sha256(body).hexdigest() if body else _EMPTY_SHA
        hdrs, qs = self._sign(method, path, query, headers or {}, sha)
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, _q(path, safe="/-_.~") + ("?" + qs if qs else ""),
                         body=body or None, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def _ok(self, what, r, ok=(200,)):
        if r[0] not in ok:
            raise S3Error(r[0], r[2].decode("utf-8", "replace"), what)
        return r

    def create_bucket(self, bucket):
        return self._ok("create bucket " + bucket, self.request("PUT", "/" + bucket))

    def put(self, bucket, key, data, headers=None):
        """The response's status; 412 (If-None-Match refused) is returned, not raised."""
        r = self.request("PUT", "/%s/%s" % (bucket, key), body=data, headers=headers)
        return self._ok("put %s/%s" % (bucket, key), r, ok=(200, 412))[0]

    def get(self, bucket, key, byte_range=None):
        """The object's bytes, or None when it does not exist."""
        h = {"Range": "bytes=%d-%d" % byte_range} if byte_range else None
        r = self.request("GET", "/%s/%s" % (bucket, key), headers=h)
        if r[0] == 404:
            return None
        return self._ok("get %s/%s" % (bucket, key), r, ok=(200, 206))[2]

    def delete(self, bucket, key):
        self._ok("delete %s/%s" % (bucket, key),
                 self.request("DELETE", "/%s/%s" % (bucket, key)), ok=(204, 200))

    def list(self, bucket, prefix=""):
        """{key: size} of every object under prefix (ListObjectsV2, all pages)."""
        out, token = {}, None
        while True:
            q = {"list-type": "2", "prefix": prefix, "max-keys": "1000"}
            if token:
                q["continuation-token"] = token
            r = self._ok("list %s/%s" % (bucket, prefix), self.request("GET", "/" + bucket, q))
            root = ET.fromstring(r[2])
            for c in root.findall(_NS + "Contents"):
                out[c.find(_NS + "Key").text] = int(c.find(_NS + "Size").text)
            if root.findtext(_NS + "IsTruncated") != "true":
                return out
            token = root.findtext(_NS + "NextContinuationToken")
