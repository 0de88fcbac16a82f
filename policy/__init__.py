"""Content policy: the marketplace's messaging rules as small rule objects."""
