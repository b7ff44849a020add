"""Fabriek as a site of the EuroHPC federation platform (a Waldur marketplace)."""
