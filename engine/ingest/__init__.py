"""Raw-frame watching, completeness and classification."""
