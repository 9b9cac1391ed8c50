// Package metrics exposes Temporal SDK metrics, and the release counters and step
// durations the workflows record through the SDK, to Prometheus.
package metrics

import (
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// Handler implements the SDK's metrics handler on a Prometheus registry.
type Handler struct {
	reg  *prometheus.Registry
	tags map[string]string
	mu   *sync.Mutex
	vecs map[string]prometheus.Collector
}

// New returns a handler that registers its metrics in reg.
func New(reg *prometheus.Registry) *Handler {
	return &Handler{reg: reg, tags: map[string]string{}, mu: &sync.Mutex{}, vecs: map[string]prometheus.Collector{}}
}

var _ client.MetricsHandler = (*Handler)(nil)

// WithTags returns a handler that adds the tags.
func (h *Handler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := make(map[string]string, len(h.tags)+len(tags))
	for k, v := range h.tags {
		merged[k] = v
	}
	for k, v := range tags {
		merged[k] = v
	}
	return &Handler{reg: h.reg, tags: merged, mu: h.mu, vecs: h.vecs}
}

func (h *Handler) labels() ([]string, prometheus.Labels) {
	keys := make([]string, 0, len(h.tags))
	labels := prometheus.Labels{}
	for k, v := range h.tags {
		k = sanitize(k)
		keys = append(keys, k)
		labels[k] = v
	}
	sort.Strings(keys)
	return keys, labels
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

// vec finds or registers the collector of a metric with this label set. A name seen
// with another label set gets the keys in its name, so both stay valid.
func (h *Handler) vec(kind, name string, keys []string, make func(name string) prometheus.Collector) prometheus.Collector {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := kind + "|" + name + "|" + strings.Join(keys, ",")
	if c, ok := h.vecs[id]; ok {
		return c
	}
	full := sanitize(name)
	c := make(full)
	if err := h.reg.Register(c); err != nil {
		full = full + "__" + strings.Join(keys, "_")
		c = make(full)
		_ = h.reg.Register(c)
	}
	h.vecs[id] = c
	return c
}

// Counter is a Prometheus counter.
func (h *Handler) Counter(name string) client.MetricsCounter {
	keys, labels := h.labels()
	v := h.vec("counter", name, keys, func(n string) prometheus.Collector {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: n, Help: "Temporal metric " + name}, keys)
	}).(*prometheus.CounterVec)
	return counter{v.With(labels)}
}

// Gauge is a Prometheus gauge.
func (h *Handler) Gauge(name string) client.MetricsGauge {
	keys, labels := h.labels()
	v := h.vec("gauge", name, keys, func(n string) prometheus.Collector {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: n, Help: "Temporal metric " + name}, keys)
	}).(*prometheus.GaugeVec)
	return gauge{v.With(labels)}
}

// Timer is a Prometheus histogram in seconds.
func (h *Handler) Timer(name string) client.MetricsTimer {
	keys, labels := h.labels()
	v := h.vec("timer", name, keys, func(n string) prometheus.Collector {
		return prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: n + "_seconds", Help: "Temporal metric " + name,
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 12)}, keys)
	}).(*prometheus.HistogramVec)
	return timer{v.With(labels)}
}

type counter struct{ c prometheus.Counter }

func (c counter) Inc(n int64) { c.c.Add(float64(n)) }

type gauge struct{ g prometheus.Gauge }

func (g gauge) Update(v float64) { g.g.Set(v) }

type timer struct{ o prometheus.Observer }

func (t timer) Record(d time.Duration) { t.o.Observe(d.Seconds()) }
