"""What the audit leaves to read: report.json, report.md, summary.csv, the HTML page, its evidence, the status page."""
