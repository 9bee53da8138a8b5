package feature

// Operation names one of the feature store's operations. The service
// reports each operation it runs under one of these names, and the metrics
// use them as the bounded value set of the operation label.
type Operation string

// The operations.
const (
	OpGetEntity         Operation = "get_entity"
	OpGetEntityAsOf     Operation = "get_entity_as_of"
	OpGetOnlineFeatures Operation = "get_online_features"
	OpIngest            Operation = "ingest"
	OpWriteRows         Operation = "write_rows"
	OpListGroups        Operation = "list_groups"
	OpGetGroup          Operation = "get_group"
	OpPutGroup          Operation = "put_group"
	OpDeleteGroup       Operation = "delete_group"
	OpStats             Operation = "stats"
	OpRecompute         Operation = "recompute"

	OpGetHistoricalFeatures Operation = "get_historical_features"
	OpListFeatureServices   Operation = "list_feature_services"
	OpGetFeatureService     Operation = "get_feature_service"
	OpPutFeatureService     Operation = "put_feature_service"
	OpDeleteFeatureService  Operation = "delete_feature_service"
)

// Operations returns every operation, so that a consumer (the metrics,
// which create their series at zero) covers the whole set.
func Operations() []Operation {
	return []Operation{
		OpGetEntity, OpGetEntityAsOf, OpGetOnlineFeatures, OpIngest, OpWriteRows,
		OpListGroups, OpGetGroup, OpPutGroup, OpDeleteGroup, OpStats, OpRecompute,
		OpGetHistoricalFeatures, OpListFeatureServices, OpGetFeatureService, OpPutFeatureService,
		OpDeleteFeatureService,
	}
}
