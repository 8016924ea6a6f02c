//go:build linux

package assembly

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout"
	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout/metricsserver"
	"github.com/snowsignal/snowsignal/cmd/snowsignal/readout/statsserver"
	"github.com/snowsignal/snowsignal/stages/shared/insight"
	"github.com/snowsignal/snowsignal/stages/shared/rules"
)

// Observability is how a relay shows what it does, besides its logs (see
// docs/OBSERVABILITY.md). The zero value turns every endpoint off.
type Observability struct {
	// Version and Commit identify the build in snapshots and metrics.
	Version, Commit string
	// StatsSocket is the unix socket `snowsignal stats` and `snowsignal
	// health` query; empty disables it.
	StatsSocket string
	// MetricsAddress is the HOST:PORT serving /metrics and /healthz over
	// HTTP; empty disables it.
	MetricsAddress string
	// SummaryInterval is how often an info line sums up the traffic; zero
	// disables it.
	SummaryInterval time.Duration
}

// observability is a relay's observability state.
type observability struct {
	insight *insight.Insight
	statsLn *net.UnixListener
	metrics *metricsserver.Stage
	window  *readout.Window // drops over the last minute, for stats readers
}

func newObservability() observability {
	return observability{insight: insight.New(insight.Config{})}
}

// outboundObserver returns the filter stage's observer: EPICS insight and
// sampled debug logs of the frames captured here.
func (r *Relay) outboundObserver() rules.Observer {
	return r.obs.insight.Observer(insight.Outbound, r.log.With().Str("stage", "filter").Logger())
}

// inboundObserver returns the rewrite stage's observer: EPICS insight and
// sampled debug logs of the frames the mesh brought.
func (r *Relay) inboundObserver() rules.Observer {
	return r.obs.insight.Observer(insight.Inbound, r.log.With().Str("stage", "rewrite").Logger())
}

// openObservability opens the stats socket and the metrics listener, so
// that a path or address in use fails the start, and adds the stages that
// serve them and the summary to the supervisor.
func (r *Relay) openObservability() error {
	o := r.cfg.Observability
	if o.StatsSocket != "" {
		ln, err := statsserver.Listen(o.StatsSocket)
		if err != nil {
			return fmt.Errorf("--stats-socket %s: %w (give each relay its own path, or --stats-socket= to turn it off)", o.StatsSocket, err)
		}
		r.obs.statsLn = ln
		r.sup.Add(r.Metrics.Stage("stats"), statsserver.New(ln, r.answer, r.log), nil)
		r.obs.window = readout.NewWindow(r.Metrics.DropCounts)
		r.sup.Add(r.Metrics.Stage("window"), r.obs.window, nil)
	}
	if o.MetricsAddress != "" {
		ln, err := metricsserver.Listen(o.MetricsAddress)
		if err != nil {
			r.closeObservability()
			return fmt.Errorf("--metrics-address %s: %w", o.MetricsAddress, err)
		}
		r.obs.metrics = metricsserver.New(ln, r.MetricsHandler(), r.log)
		r.sup.Add(r.Metrics.Stage("metrics"), r.obs.metrics, nil)
	}
	if o.SummaryInterval > 0 {
		r.sup.Add(r.Metrics.Stage("summary"), readout.NewSummary(r.Snapshot, o.SummaryInterval, r.log), nil)
	}
	return nil
}

// closeObservability closes the stats socket (removing its file) and the
// metrics listener if it was never served.
func (r *Relay) closeObservability() {
	if r.obs.statsLn != nil {
		r.obs.statsLn.Close()
		r.obs.statsLn = nil
	}
	if r.obs.metrics != nil {
		r.obs.metrics.Close()
	}
}

// answer serves the stats socket's verbs.
func (r *Relay) answer(verb string) (any, error) {
	if verb == "snapshot" {
		return r.Snapshot(), nil
	}
	return nil, errors.New("unknown request " + verb + " (known: snapshot)")
}

// MetricsAddr is the address the metrics endpoint serves on, e.g. to learn the
// port chosen for ":0"; empty when it is off.
func (r *Relay) MetricsAddr() string {
	if r.obs.metrics == nil {
		return ""
	}
	return r.obs.metrics.Addr()
}

// MetricsHandler returns the relay's HTTP handler: /metrics and /healthz.
func (r *Relay) MetricsHandler() http.Handler { return readout.MetricsHandler(r.Snapshot) }
