"""The benchmark (`make bench`): burst, steady load and the framework's floor on a stack of its own.

Never part of `make test`; see ADR 0008 for what is measured and how.
"""
