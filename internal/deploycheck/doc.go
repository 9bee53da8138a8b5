// Package deploycheck holds no code, only tests: they check the deployment
// files at the repository root (docker-compose.yml, Dockerfile, .dockerignore,
// .env.example) and the Kubernetes manifests in deploy/kubernetes by parsing
// them with the libraries the real tools use — the compose-spec loader
// (compose-go) for the compose file, the Kubernetes API types with the API
// machinery's strict decoder for the manifests, promtool for the in-cluster
// Prometheus configuration — and asserting what operators rely on: ports,
// profiles, health checks, probes, security contexts, credentials that only
// come from the environment, and the prometheus.io/* scrape relabelling.
// There is no Docker engine or cluster in the test: nothing is run.
package deploycheck
