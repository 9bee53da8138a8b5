// Package monitoring has no code of its own: its tests check the monitoring
// configuration shipped under prometheus/ — the Prometheus configuration, the
// recording and alerting rules with their promtool unit tests, and the
// Alertmanager configuration — with the real promtool and amtool (Debian's
// prometheus and prometheus-alertmanager packages), and hold the rules to the
// project's conventions: every alert has a severity, a static summary, a
// templated description and a runbook in docs/runbooks.md, is tested firing
// and silent, and reads only metrics that exist (docs/metrics.md or a
// verified exporter metric).
package monitoring
