"""One reader per on-disk format (as timm's data/readers/); `sarlib.data.datasets` dispatches to them."""
