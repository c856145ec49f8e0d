"""Everything Paydeck says to Xero goes through this package."""
