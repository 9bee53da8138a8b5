// Package api embeds the OpenAPI description of the REST API, served at
// GET /openapi.yaml and checked against the router by tests.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3 description of the API.
//
//go:embed openapi.yaml
var OpenAPI []byte
