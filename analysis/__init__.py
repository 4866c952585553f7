"""The comparison report: a sweep's runs read from MLflow (or an export), compared across seeds and
test sentences, decided with error control, drawn and written."""
