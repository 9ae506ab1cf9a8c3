package storage

// ExpandSchemaForTest exposes expandSchema to the external tests.
func ExpandSchemaForTest(d Dialect, sql string) string { return d.expandSchema(sql) }
