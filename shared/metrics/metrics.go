// Package metrics keeps a server's counters and gauges and serves them in the
// Prometheus text exposition format (version 0.0.4), so any Prometheus-
// compatible scraper can read them at /metrics.
//
// It is deliberately tiny — named atomic values, label sets written into
// the names (With gives a labelled view, so one process can serve several
// sessions' figures) and a writer — and must not know what the numbers mean:
// the packages that own them update them.
//
// A name may carry a label set, `relay_clients{mode="display"}`: values of
// one family (the name before `{`) are written under one HELP and TYPE line.
package metrics

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Value is one metric: a counter (only grows) or a gauge.
type Value struct {
	name, help, kind string
	bits             atomic.Uint64 // float64 bits
}

// Set sets the value (gauges; counters set from a monotonic source).
func (v *Value) Set(x float64) { v.bits.Store(math.Float64bits(x)) }

// Add adds d atomically.
func (v *Value) Add(d float64) {
	for {
		old := v.bits.Load()
		if v.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

// Get returns the value.
func (v *Value) Get() float64 { return math.Float64frombits(v.bits.Load()) }

// Registry is a set of named metrics, or a labelled view of one (With).
type Registry struct {
	set    *valueSet
	labels string // added to every name of this view, e.g. session="desk"
}

type valueSet struct {
	mu     sync.Mutex
	values map[string]*Value
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{set: &valueSet{values: map[string]*Value{}}} }

// With returns a view of r whose metrics all carry labels (`key="value"`,
// several joined by commas) besides their own: a process running several
// sessions gives each a view, and one /metrics serves them all.
func (r *Registry) With(labels string) *Registry {
	if r.labels != "" {
		labels = r.labels + "," + labels
	}
	return &Registry{set: r.set, labels: labels}
}

// full is name with the view's labels added to its label set.
func (r *Registry) full(name string) string {
	switch {
	case r.labels == "":
		return name
	case strings.HasSuffix(name, "}"):
		return name[:len(name)-1] + "," + r.labels + "}"
	}
	return name + "{" + r.labels + "}"
}

func (r *Registry) get(name, help, kind string) *Value {
	name = r.full(name)
	r.set.mu.Lock()
	defer r.set.mu.Unlock()
	if v, ok := r.set.values[name]; ok {
		return v
	}
	v := &Value{name: name, help: help, kind: kind}
	r.set.values[name] = v
	return v
}

// Counter returns the counter called name, creating it.
func (r *Registry) Counter(name, help string) *Value { return r.get(name, help, "counter") }

// Gauge returns the gauge called name, creating it.
func (r *Registry) Gauge(name, help string) *Value { return r.get(name, help, "gauge") }

// Remove forgets the metric called name (a per-connection series whose
// connection is gone).
func (r *Registry) Remove(name string) {
	r.set.mu.Lock()
	delete(r.set.values, r.full(name))
	r.set.mu.Unlock()
}

// family is a name without its label set.
func family(name string) string {
	if i := strings.IndexByte(name, '{'); i >= 0 {
		return name[:i]
	}
	return name
}

// Write writes every metric (of every view) in the text format, sorted by name; a family's
// HELP and TYPE come once, before its first value.
func (r *Registry) Write(w io.Writer) error {
	r.set.mu.Lock()
	vs := make([]*Value, 0, len(r.set.values))
	for _, v := range r.set.values {
		vs = append(vs, v)
	}
	r.set.mu.Unlock()
	sort.Slice(vs, func(i, j int) bool {
		fi, fj := family(vs[i].name), family(vs[j].name)
		if fi != fj {
			return fi < fj
		}
		return vs[i].name < vs[j].name
	})
	last := ""
	for _, v := range vs {
		if f := family(v.name); f != last {
			last = f
			if _, err := fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", f, v.help, f, v.kind); err != nil {
				return err
			}
		}
		if _, err := fmt.Fprintf(w, "%s %g\n", v.name, v.Get()); err != nil {
			return err
		}
	}
	return nil
}

// Handler serves the registry.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		r.Write(w)
	})
}
