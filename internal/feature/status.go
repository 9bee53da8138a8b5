package feature

// Feast field statuses: how a read reports each value it returns, as Feast's
// feature server does.
const (
	// StatusPresent is a value that is there and within its group's TTL.
	StatusPresent = "PRESENT"
	// StatusNotFound is a value of an entity that has no row in the group.
	StatusNotFound = "NOT_FOUND"
	// StatusNullValue is a null value of a row that is there.
	StatusNullValue = "NULL_VALUE"
	// StatusOutsideMaxAge is a value older than its group's TTL; it is
	// still returned.
	StatusOutsideMaxAge = "OUTSIDE_MAX_AGE"
)
