package controller

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controller's Prometheus metrics, on a registry of their
// own (no global state). The HTTP endpoint serves it together with
// controller-runtime's global registry, which holds the workqueue and
// client-go metrics; controller-runtime offers no way to move those.
type Metrics struct {
	Registry *prometheus.Registry

	signed         *prometheus.CounterVec
	failed         *prometheus.CounterVec
	approved       *prometheus.CounterVec
	denied         *prometheus.CounterVec
	conflicts      *prometheus.CounterVec
	caReloads      *prometheus.CounterVec
	caStale        *prometheus.GaugeVec
	signingSeconds *prometheus.HistogramVec
	issueDelay     *prometheus.HistogramVec
	leader         prometheus.Gauge
}

// Metric names.
const (
	metricSigned   = "kubepki_csr_signed_total"
	metricFailed   = "kubepki_csr_failed_total"
	metricApproved = "kubepki_csr_approved_total"
	metricDenied   = "kubepki_csr_denied_total"
)

// NewMetrics registers the metrics on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		signed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricSigned, Help: "CSRs this replica issued a certificate for (status update accepted by the API server).",
		}, []string{"signer"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricFailed, Help: "CSRs this replica marked Failed, by signer and reason.",
		}, []string{"signer", "reason"}),
		approved: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricApproved, Help: "CSRs this replica approved, by signer and policy chain.",
		}, []string{"signer", "chain"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: metricDenied, Help: "CSRs this replica denied, by signer and the policy that denied them.",
		}, []string{"signer", "policy"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubepki_csr_update_conflicts_total", Help: "Status or approval updates refused with a conflict (someone else wrote first).",
		}, []string{"signer"}),
		caReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kubepki_ca_reloads_total", Help: "CA reloads after a file changed, by signer and result (ok, error): one per change on disk.",
		}, []string{"signer", "result"}),
		caStale: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kubepki_ca_stale", Help: "1 while a signer's CA files on disk do not load (see the log) and it signs with the CA it loaded before, else 0.",
		}, []string{"signer"}),
		signingSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kubepki_csr_signing_duration_seconds",
			Help:    "Time to issue one certificate: parse, check, sign and the status update.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14), // 1ms .. 8s
		}, []string{"signer"}),
		issueDelay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kubepki_csr_approval_to_issue_seconds",
			Help:    "Time from the Approved condition to the certificate (second resolution: the condition's timestamp has no more).",
			Buckets: prometheus.ExponentialBuckets(0.5, 2, 12), // 0.5s .. 17m
		}, []string{"signer"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kubepki_leader", Help: "1 while this replica holds the leader lease (and so approves and signs), else 0.",
		}),
	}
	// No Go runtime or process collectors here: controller-runtime's
	// global registry, served alongside, has them already.
	m.Registry.MustRegister(m.signed, m.failed, m.approved, m.denied, m.conflicts, m.caReloads, m.caStale,
		m.signingSeconds, m.issueDelay, m.leader)
	return m
}

// Totals sums the decision counters over their labels, for the summary the
// controller logs when it stops.
func (m *Metrics) Totals() map[string]float64 {
	out := map[string]float64{}
	families, err := m.Registry.Gather()
	if err != nil {
		return out
	}
	for _, f := range families {
		switch f.GetName() {
		case metricSigned, metricFailed, metricApproved, metricDenied:
			for _, s := range f.GetMetric() {
				out[f.GetName()] += s.GetCounter().GetValue()
			}
		}
	}
	return out
}

// caReloaded returns the CAFiles reload callback of a signer: it counts the
// reload by result and sets kubepki_ca_stale.
func (m *Metrics) caReloaded(signer string) func(error) {
	return func(err error) {
		result, stale := "ok", 0.0
		if err != nil {
			result, stale = "error", 1
		}
		m.caReloads.WithLabelValues(signer, result).Inc()
		m.caStale.WithLabelValues(signer).Set(stale)
	}
}
