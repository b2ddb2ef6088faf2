"""Studies: grids of training runs executed on Ray (``ibcheck study``), and the paper's claims
judged over seeds from their run folders (``ibcheck study-report``)."""
