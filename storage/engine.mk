# storage/ engine: base stores, copy-on-write B+tree, version tree writer, commit pipeline (issue 3).
