package rowjson

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/featurestore/featurestore/internal/feature"
)

// ServiceColumns are the columns of both engines' feature_services table,
// in the order ScanService reads them; ServiceArgs gives the first four.
const ServiceColumns = `name, features, description, tags, schema_version, created_at, updated_at`

// ServiceArgs returns the values of the columns a client defines, the first
// four of ServiceColumns: name, features and tags as JSON, description.
func ServiceArgs(fs feature.FeatureService) ([]any, error) {
	features, err := json.Marshal(fs.Features)
	if err != nil {
		return nil, fmt.Errorf("encode feature service references: %w", err)
	}
	tags := []byte("{}")
	if len(fs.Tags) > 0 {
		if tags, err = json.Marshal(fs.Tags); err != nil {
			return nil, fmt.Errorf("encode feature service tags: %w", err)
		}
	}
	return []any{fs.Name, string(features), fs.Description, string(tags)}, nil
}

// ScanService reads a row selected as ServiceColumns; toTime is as for
// ScanGroup.
func ScanService[T any](row Scanner, toTime func(T) time.Time) (feature.FeatureService, error) {
	var (
		fs                 feature.FeatureService
		features, tags     []byte
		created, updatedAt T
	)
	if err := row.Scan(&fs.Name, &features, &fs.Description, &tags, &fs.SchemaVersion, &created, &updatedAt); err != nil {
		return feature.FeatureService{}, err
	}
	if err := json.Unmarshal(features, &fs.Features); err != nil {
		return feature.FeatureService{}, fmt.Errorf("decode references of feature service %s: %w", fs.Name, err)
	}
	if err := json.Unmarshal(tags, &fs.Tags); err != nil {
		return feature.FeatureService{}, fmt.Errorf("decode tags of feature service %s: %w", fs.Name, err)
	}
	if len(fs.Tags) == 0 {
		fs.Tags = nil
	}
	fs.CreatedAt, fs.UpdatedAt = toTime(created), toTime(updatedAt)
	return fs, nil
}

// ScanServices reads every row of rows, selected as ServiceColumns. No rows
// give an empty, non-nil slice.
func ScanServices[T any](rows Rows, toTime func(T) time.Time) ([]feature.FeatureService, error) {
	out := []feature.FeatureService{}
	for rows.Next() {
		fs, err := ScanService(rows, toTime)
		if err != nil {
			return nil, err
		}
		out = append(out, fs)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// DecodeValue parses one feature value as EncodeRow wrote it inside a row's
// object (or as a database's JSON operator extracts it): null, a boolean, a
// string, an integer (int64) or a number with a fraction or exponent
// (float64).
func DecodeValue(b []byte) (any, error) {
	d := valueDecoder{b: b}
	d.space()
	v, err := d.value()
	if err == nil {
		err = d.end()
	}
	if err != nil {
		return nil, fmt.Errorf("decode feature value %q: %w", b, err)
	}
	return v, nil
}
