// Package monitoring has no code of its own: its tests check the monitoring
// configuration shipped under prometheus/ — the Prometheus configuration, the
// recording and alerting rules (both renderings of prometheus/templates, for
// compose and Kubernetes) with their promtool unit tests, the Alertmanager
// configuration and its receiver — with the real promtool and amtool
// (Debian's prometheus and prometheus-alertmanager packages), lint the
// Grafana dashboards, and hold the rules to the project's conventions: every
// alert has a severity, a static summary, a templated description and a
// runbook in docs/runbooks.md, is tested firing and silent, and reads only
// metrics that exist (docs/metrics.md or a verified exporter metric).
// TestMonitoringStackEndToEnd runs the whole bundle on loopback and measures
// the time from a fault to its page (docs/alerting.md).
//
// The rules are rendered by the rulegen command:
//
//go:generate go run ./rulegen -root ../..
package monitoring
