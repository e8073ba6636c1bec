"""``make demo``: build the example model, scan it, write the HTML report."""
