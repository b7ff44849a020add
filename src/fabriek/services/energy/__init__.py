"""Energy and its consequences: the metering ledger of each job run, usage rollups, each
site's draw on the grid against its limit, the grid's carbon intensity and the heat demand
by hour, and the EU data-centre report."""
