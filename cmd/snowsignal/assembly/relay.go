//go:build linux

// Package assembly assembles a SnowSignal relay from a Config: it opens the
// mesh socket, builds the outbound and inbound pipelines and runs them under
// one supervisor.
package assembly

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"net/netip"
	"time"

	"github.com/rs/zerolog"

	"github.com/snowsignal/snowsignal/netio/iface"
	"github.com/snowsignal/snowsignal/netio/mesh"
	"github.com/snowsignal/snowsignal/netio/meshconn"
	"github.com/snowsignal/snowsignal/netio/rawsock"
	"github.com/snowsignal/snowsignal/pipeline"
	"github.com/snowsignal/snowsignal/stages/announce"
	"github.com/snowsignal/snowsignal/stages/capture"
	"github.com/snowsignal/snowsignal/stages/decode"
	"github.com/snowsignal/snowsignal/stages/discovery"
	"github.com/snowsignal/snowsignal/stages/fanout"
	"github.com/snowsignal/snowsignal/stages/filter"
	"github.com/snowsignal/snowsignal/stages/hello"
	"github.com/snowsignal/snowsignal/stages/inject"
	"github.com/snowsignal/snowsignal/stages/listener"
	"github.com/snowsignal/snowsignal/stages/locals"
	"github.com/snowsignal/snowsignal/stages/rewrite"
	"github.com/snowsignal/snowsignal/stages/shared/dedup"
	"github.com/snowsignal/snowsignal/stages/shared/peers"
	"github.com/snowsignal/snowsignal/stages/shared/ratelimit"
	"github.com/snowsignal/snowsignal/stages/shared/segment"
)

// shutdownGrace is how long the pipeline may take to drain after a stop
// request; a SIGTERM must end the process within a second.
const shutdownGrace = 500 * time.Millisecond

// helloExpiry is how many hello intervals a neighbour may stay silent
// before the other relays on its segment take over its injections.
const helloExpiry = 3

// A Relay is one running SnowSignal instance.
type Relay struct {
	cfg     Config
	log     zerolog.Logger
	Metrics *pipeline.Metrics
	Peers   *peers.Table
	Target  *iface.Current
	Dedup   *dedup.Cache
	Segment *segment.Table // nil when hellos are off
	// ClientLimit and PeerLimit are the capture-side (per client) and
	// mesh-side (per peer) rate limiters; nil when off.
	ClientLimit, PeerLimit *ratelimit.Limiter

	conn      *meshconn.Conn
	sup       *pipeline.Supervisor
	capture   *capture.Stage
	rewrite   *rewrite.Stage
	probes    *rewrite.ProbeResponder // answers doctor's probes, for rewrite
	discovery *discovery.Stage
	announce  *announce.Stage
	obs       observability // stats socket, metrics, summary, EPICS insight (observability.go)

	// The socket readers' coalescers (--coalesce), kept for their counts.
	captureCoalescer, listenerCoalescer *pipeline.Coalescer
	// locals watches for local sockets on the relayed ports (nil without
	// local delivery).
	locals *locals.Watcher
}

// New checks cfg against the system, opens the mesh socket and builds the
// pipelines. Nothing runs until Run.
func New(cfg Config, log zerolog.Logger) (*Relay, error) {
	bindGiven := cfg.MeshBind.IsValid()
	cfg = cfg.withDefaults()
	info, err := iface.Lookup(cfg.Interface)
	if err != nil {
		if !cfg.WaitForInterface || !errors.Is(err, iface.ErrNotFound) {
			return nil, err
		}
		log.Warn().Str("iface", cfg.Interface).Msg("target interface does not exist yet; waiting for it (--wait-for-interface)")
		info = nil
	}
	if !bindGiven {
		cfg.MeshBind = cfg.autoMeshBind(info)
	}
	conn, err := meshconn.Listen(netip.AddrPortFrom(cfg.MeshBind, cfg.MeshPort))
	if err != nil {
		return nil, err
	}
	if !cfg.MeshOffload {
		if err := conn.DisableOffload(); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if cfg.LocalDelivery && inject.StrictRPFilter() {
		log.Warn().Msg("strict reverse-path filtering (rp_filter=1) is on: servers on this host will not receive relayed broadcasts; " +
			"set net.ipv4.conf.all.rp_filter and net.ipv4.conf.lo.rp_filter to 2 (loose) or 0")
	}
	r := &Relay{cfg: cfg, log: log, Metrics: pipeline.NewMetrics(), Peers: peers.NewTable(), Target: &iface.Current{}, conn: conn,
		obs: newObservability()}
	if info != nil {
		r.Target.Store(info)
	}
	if err := r.build(info); err != nil {
		conn.Close()
		return nil, err
	}
	if err := r.openObservability(); err != nil {
		conn.Close()
		return nil, err
	}
	return r, nil
}

// autoMeshBind is the address the mesh socket binds to when Config.MeshBind
// is not given (see there); info is the interface, nil while it does not
// exist yet.
func (c Config) autoMeshBind(info *iface.Info) netip.Addr {
	v6 := c.MeshIPv6 || info != nil && !info.Addr.IsValid() && info.Addr6().IsValid()
	for _, p := range c.Peers {
		if a, err := netip.ParseAddr(p); err == nil && a.Unmap().Is6() {
			v6 = true
		}
	}
	if v6 {
		// Dual-stack, not the interface's IPv6 address: a socket bound to a
		// unicast address receives no hellos sent to ff02::1.
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// maxFrame sizes packet buffers: a frame of the interface's MTU plus a
// VLAN tag's worth of slack, behind the largest mesh header.
func maxFrame(info *iface.Info) int {
	mtu := 9000 // unknown yet: room for jumbo frames
	if info != nil {
		mtu = max(info.MTU, 1500)
	}
	n := mtu + 14 + 4 + mesh.MaxHeaderLen
	return (n + 63) &^ 63
}

func (r *Relay) build(info *iface.Info) error {
	cfg := r.cfg
	m := r.Metrics
	pool := pipeline.NewPool(maxFrame(info))
	seed := maphash.MakeSeed()
	if cfg.DedupWindow > 0 {
		r.Dedup = dedup.New(cfg.DedupWindow, dedup.DefaultSize)
	}

	if err := r.buildLimits(); err != nil {
		return err
	}

	var sealer *mesh.Sealer
	var opener *mesh.Opener
	if len(cfg.MeshKeys) > 0 {
		var id [4]byte
		if _, err := rand.Read(id[:]); err != nil {
			return fmt.Errorf("mesh sender id: %w", err)
		}
		sealer = mesh.NewSealer(cfg.MeshKeys[0], binary.BigEndian.Uint32(id[:]))
		opener = mesh.NewOpener(cfg.MeshKeys...)
	}

	st := map[string]*pipeline.StageCounters{}
	for _, n := range []string{"discovery", "capture", "decode", "filter", "fanout", "listener", "rewrite", "inject"} {
		st[n] = m.Stage(n)
	}
	link := func(name string, size int, p pipeline.Policy) *pipeline.Link {
		l := pipeline.NewLink(name, size, p, pool)
		m.AddLink(l)
		return l
	}
	// Readers' links drop the oldest batch when full, so a storm never
	// stalls the socket readers; links between stages block (backpressure).
	capDec := link("capture->decode", pipeline.QueueReaderSize, pipeline.Drop)
	decFil := link("decode->filter", pipeline.QueueStageSize, pipeline.Block)
	filFan := link("filter->fanout", pipeline.QueueStageSize, pipeline.Block)
	lisRew := link("listener->rewrite", pipeline.QueueReaderSize, pipeline.Drop)
	rewInj := link("rewrite->inject", pipeline.QueueStageSize, pipeline.Block)

	fragments := true
	sup := pipeline.NewSupervisor(r.log, pipeline.DefaultBackoff, shutdownGrace)

	r.discovery = discovery.New(discovery.Config{
		Static: cfg.Peers, Discover: cfg.Discover, Interval: cfg.DiscoveryInterval, MeshPort: cfg.MeshPort,
		Resolver: cfg.Resolver, LocalAddrs: iface.LocalAddrs, Counters: st["discovery"],
		IPv6: cfg.MeshBind.Is6(),
		SelfAddr: func() netip.Addr {
			if i := r.Target.Load(); i != nil {
				if !i.Addr.IsValid() && cfg.MeshBind.Is6() {
					return i.Addr6() // an interface without IPv4
				}
				return i.Addr
			}
			return netip.Addr{}
		},
	}, r.Peers, r.log)
	sup.Add(st["discovery"], r.discovery, nil)

	// The relay id: in hellos and capabilities announcements alike.
	var idb [4]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return fmt.Errorf("relay id: %w", err)
	}
	id := binary.BigEndian.Uint32(idb[:])
	caps := cfg.meshCaps()
	var hellos *hello.Stage
	if cfg.HelloInterval > 0 {
		r.Segment = segment.NewTable(id, helloExpiry*cfg.HelloInterval)
		hellos = hello.New(r.Segment, r.conn, sealer, r.Target, cfg.MeshPort, cfg.HelloInterval, caps, r.log)
		sup.Add(m.Stage("hello"), hellos, nil)
	}
	// Every relay answers capabilities requests; only one that relays IPv6
	// announces unprompted (docs/MESH-PROTOCOL.md).
	ac := m.Stage("announce")
	r.announce = announce.New(announce.Config{ID: id, Caps: caps, Announce: caps.Has(mesh.CapIPv6)},
		r.conn, r.Peers, sealer, ac, r.log)
	sup.Add(ac, r.announce, nil)
	r.captureCoalescer = pipeline.NewCoalescer(cfg.Coalesce)
	r.listenerCoalescer = pipeline.NewCoalescer(cfg.Coalesce)
	r.capture = capture.New(capture.Config{
		Interface: cfg.Interface,
		Filter: rawsock.FilterConfig{Ports: cfg.BroadcastPorts, Mark: cfg.Mark, Fragments: fragments,
			IPv6: cfg.IPv6, IPv6Groups: cfg.IPv6Groups},
	}, pool, capDec, st["capture"], m, r.captureCoalescer, r.log)
	sup.Add(st["capture"], r.capture, nil, capDec)
	sup.Add(st["decode"], decode.NewIP(cfg.IPv6, capDec, decFil, st["decode"], m), capDec, decFil)
	sup.Add(st["filter"], filter.New(filter.Config{Ports: cfg.BroadcastPorts, Fragments: fragments, Limiter: r.ClientLimit,
		Observer: r.outboundObserver(), Groups: cfg.IPv6Groups},
		decFil, filFan, st["filter"], m, r.Dedup, r.Segment, seed), decFil, filFan)
	sup.Add(st["fanout"], fanout.New(filFan, pool, r.conn, r.Peers, sealer, cfg.shedPolicy(), st["fanout"], m, r.log), filFan)

	sup.Add(st["listener"], listener.New(r.conn, pool, lisRew, st["listener"], m, r.listenerCoalescer), nil, lisRew)
	r.probes = rewrite.NewProbeResponder(r.conn, sealer, cfg.Observability.Version)
	r.rewrite = rewrite.New(rewrite.Config{
		Ports: cfg.BroadcastPorts, Dest: cfg.RebroadcastDestination, AcceptAnyPeer: cfg.AcceptAnyPeer,
		Fragments: fragments, Limiter: r.PeerLimit, OnUnknownPeer: func(netip.Addr) { r.discovery.Kick() },
		Observer: r.inboundObserver(), Probes: r.probes, OnCaps: r.announce.Heard, IPv6: cfg.IPv6, Groups: cfg.IPv6Groups,
		OnNewNeighbour: func() {
			if hellos != nil {
				hellos.Kick()
			}
		},
	}, lisRew, rewInj, r.Target, r.Peers, opener, r.Dedup, r.Segment, seed, st["rewrite"], m, r.log)
	sup.Add(st["rewrite"], r.rewrite, lisRew, rewInj)
	if cfg.LocalDelivery {
		r.locals = locals.New(cfg.BroadcastPorts, r.log)
		sup.Add(m.Stage("locals"), r.locals, nil)
	}
	injCfg := inject.Config{Interface: cfg.Interface, Mark: cfg.Mark, LocalDelivery: cfg.LocalDelivery, Shed: cfg.shedPolicy()}
	if r.locals != nil {
		injCfg.Listeners = r.locals // never a nil *Watcher in the interface
	}
	sup.Add(st["inject"], inject.New(injCfg,
		rewInj, pool, r.Target, st["inject"], m, r.log), rewInj)
	r.sup = sup
	return nil
}

// Run relays until ctx is done, then drains the pipelines and returns.
func (r *Relay) Run(ctx context.Context) error {
	defer r.conn.Close()
	defer r.closeObservability()
	r.log.Info().Str("iface", r.cfg.Interface).Uints16("broadcast_ports", r.cfg.BroadcastPorts).
		Uint16("mesh_port", r.cfg.MeshPort).Strs("other_relays", r.cfg.Peers).Strs("discover", r.cfg.Discover).
		Bool("ipv6", r.cfg.IPv6).Str("ipv6_groups", fmt.Sprint(r.cfg.IPv6Groups)).
		Msg("relay starting")
	r.discovery.Prime(ctx)
	err := r.sup.Run(ctx)
	// The final counters, so a relay without a stats endpoint (and the demo
	// and tests, which read this line) still tells what it did.
	r.log.Info().Interface("stages", r.Metrics.Stages()).Interface("drops", r.Metrics.DropCounts()).
		Msg("relay stopped")
	return err
}

// CaptureUp reports whether the capture socket is open on a link that is up.
func (r *Relay) CaptureUp() bool { return r.capture.Up() }

// KernelDrops is the number of frames the kernel dropped on the capture socket.
func (r *Relay) KernelDrops() uint64 { return r.capture.KernelDrops() }

// MeshKernelDrops is the number of datagrams the kernel dropped because the
// mesh socket's receive buffer was full. It reads the socket; once the socket
// is closed, or if reading fails, it reports the last count read.
func (r *Relay) MeshKernelDrops() uint64 {
	d, _ := r.conn.KernelDrops() // on error, the last count
	return d
}

// UnknownSources counts datagrams from sources outside the peer set.
func (r *Relay) UnknownSources() map[netip.Addr]uint64 { return r.rewrite.UnknownSources() }

// shedPolicy is what the last stage of each direction sheds.
func (c Config) shedPolicy() pipeline.ShedPolicy {
	return pipeline.ShedPolicy{MaxDelay: c.MaxDelay, Target: c.QueueTarget, Interval: c.QueueInterval}
}
