"""Reports for the funders and the fleet: the activity report (`activity`), as tables
(`tables`), written as CSV, XLSX and PDF."""
