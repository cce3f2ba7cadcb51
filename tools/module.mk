# tools/: see tools/README.md. Appends to the variables the top-level Makefile defines.
