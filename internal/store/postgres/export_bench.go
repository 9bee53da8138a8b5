package postgres

// The write statements, for tools/stmtbench (which measures their Postgres
// CPU time per batch): the upsert and the distinct-key statement WriteRows
// prefers.
const (
	WriteRowsSQL  = writeRowsSQL
	InsertRowsSQL = insertRowsSQL
)
