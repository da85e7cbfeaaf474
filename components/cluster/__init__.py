"""The cluster's GPU inventory (a data file users can replace) and placement on it."""
