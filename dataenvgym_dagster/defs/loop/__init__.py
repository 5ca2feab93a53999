"""The teaching loop's assets: shared per-domain foundations and one asset group per iteration."""
