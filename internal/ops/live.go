package ops

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/onion"
	"github.com/jm-directory/jm-directory-server/internal/selfprobe"
	"github.com/jm-directory/jm-directory-server/internal/server"
	"github.com/jm-directory/jm-directory-server/internal/stats"
)

//go:embed page.html
var pageHTML []byte

func (o *Ops) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
	_, _ = w.Write(pageHTML)
}

// Sample is one point of the live page's history.
type Sample struct {
	T       int64              `json:"t"` // unix seconds
	Peers   int                `json:"peers"`
	Makers  int                `json:"makers"`
	Takers  int                `json:"takers"`
	InRate  float64            `json:"in_rate"`  // lines received per second
	OutRate float64            `json:"out_rate"` // lines queued to peers per second
	ByType  map[string]float64 `json:"by_type"`  // lines received per second, by type
}

// History is a bounded ring of samples, oldest dropped first.
type History struct {
	mu   sync.Mutex
	ring []Sample
	next int
	full bool
}

// NewHistory keeps the last n samples.
func NewHistory(n int) *History { return &History{ring: make([]Sample, n)} }

// Add appends a sample.
func (h *History) Add(s Sample) {
	h.mu.Lock()
	h.ring[h.next] = s
	h.next = (h.next + 1) % len(h.ring)
	h.full = h.full || h.next == 0
	h.mu.Unlock()
}

// All returns the samples, oldest first.
func (h *History) All() []Sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.full {
		return append([]Sample(nil), h.ring[:h.next]...)
	}
	return append(append([]Sample(nil), h.ring[h.next:]...), h.ring[:h.next]...)
}

// Identity is who the directory is, the live page's header: its nick, its advertised
// location (the onion and port, or the listen address on regtest; "" while unknown),
// network, version, message of the day (the full text peers receive, version line
// included) and tor_mode (none, control, launch or external). The state of the onion and
// the self-probe is in LiveState's Onion and SelfProbe.
type Identity struct {
	Nick     string `json:"nick"`
	Location string `json:"location"`
	Network  string `json:"network"`
	Version  string `json:"version"`
	MOTD     string `json:"motd"`
	TorMode  string `json:"tor_mode"`
}

// LiveState is one update of the live page.
type LiveState struct {
	// Now is the server's clock at the update: the page reckons the ages of Onion's and
	// SelfProbe's timestamps from it, not from the browser's clock.
	Now           time.Time           `json:"now"`
	UptimeSeconds float64             `json:"uptime_seconds"`
	Network       string              `json:"network"`
	Version       string              `json:"version"`
	Healthy       bool                `json:"healthy"`
	HealthReason  string              `json:"health_reason,omitempty"`
	Peers         int                 `json:"peers"`
	Makers        int                 `json:"makers"`
	Takers        int                 `json:"takers"`
	Handshaking   int                 `json:"handshaking"`
	MaxPeers      int                 `json:"max_peers"`
	Sample        Sample              `json:"sample"`
	Disconnects   map[string]uint64   `json:"disconnects"`
	Drops         map[string]uint64   `json:"drops"`
	Rejections    map[string]uint64   `json:"rejections"`
	Recent        []server.Disconnect `json:"recent_disconnects"`
	Identity      Identity            `json:"identity"`
	Orderbook     OrderbookStats      `json:"orderbook"`            // live offers and makers with offers, as /status
	Offers        map[string]uint64   `json:"offers_seen"`          // offer messages by command: a running count, not the book
	NickAuth      NickAuthStats       `json:"nick_auth"`            // the page shows the verified share of the peers
	Onion         *onion.Status       `json:"onion,omitempty"`      // absent without tor
	SelfProbe     *selfprobe.Status   `json:"self_probe,omitempty"` // absent without tor
	History       []Sample            `json:"history,omitempty"`    // only in the first update
}

// sampler turns counter totals into per-second rates.
type sampler struct {
	lastT        time.Time
	lastIn       [stats.NumMsgTypes]uint64
	lastOut      uint64
	lastInTotals uint64
}

func (sm *sampler) take(srv *server.Server, now time.Time) (Sample, server.Status) {
	st := srv.Status(false)
	ctr := srv.Counters()
	s := Sample{T: now.Unix(), Peers: st.Peers, Makers: st.Makers, Takers: st.Takers, ByType: map[string]float64{}}
	dt := now.Sub(sm.lastT).Seconds()
	var inTotal, outTotal uint64
	var in [stats.NumMsgTypes]uint64
	for t := range in {
		in[t] = ctr.In[t].Load()
		inTotal += in[t]
		outTotal += ctr.Out[t].Load()
	}
	if !sm.lastT.IsZero() && dt > 0 {
		s.InRate = float64(inTotal-sm.lastInTotals) / dt
		s.OutRate = float64(outTotal-sm.lastOut) / dt
		for t := range in {
			if d := in[t] - sm.lastIn[t]; d > 0 {
				s.ByType[stats.MsgType(t).String()] = float64(d) / dt
			}
		}
	}
	sm.lastT, sm.lastIn, sm.lastOut, sm.lastInTotals = now, in, outTotal, inTotal
	return s, st
}

// Run samples the server every interval into the history and pushes each update to the
// live page's subscribers, until ctx ends.
func (o *Ops) Run(ctx context.Context, interval time.Duration) {
	var sm sampler
	sm.take(o.srv, time.Now()) // baseline for the first rates
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s, st := sm.take(o.srv, now)
			o.history.Add(s)
			o.publish(o.liveState(now, s, st, false))
		}
	}
}

func (o *Ops) liveState(now time.Time, s Sample, st server.Status, withHistory bool) LiveState {
	ok, reason := o.srv.Health()
	id := Identity{Nick: st.Nick, Location: st.Location, Network: st.Network, Version: st.Version,
		MOTD: o.srv.MOTD(), TorMode: o.srv.Config().TorMode}
	ls := LiveState{
		Now:           now,
		UptimeSeconds: st.Uptime.Seconds(), Network: st.Network, Version: st.Version,
		Healthy: ok, HealthReason: reason,
		Peers: st.Peers, Makers: st.Makers, Takers: st.Takers, Handshaking: st.Pending, MaxPeers: st.MaxPeers,
		Sample: s, Disconnects: st.Closes, Drops: st.Drops, Rejections: st.Rejections, Recent: st.Recent, Offers: st.Offers,
		Identity: id, Orderbook: st.Orderbook,
		NickAuth: nickAuthStats(st.NickAuth), Onion: o.onionStatus(), SelfProbe: o.selfProbeStatus(),
	}
	if withHistory {
		ls.History = o.history.All()
	}
	return ls
}

func (o *Ops) publish(ls LiveState) {
	b, err := json.Marshal(ls)
	if err != nil {
		return
	}
	o.subsMu.Lock()
	defer o.subsMu.Unlock()
	for ch := range o.subs {
		select {
		case ch <- b:
		default: // a slow page misses an update, never blocks the sampler
		}
	}
}

// events streams LiveState updates as server-sent events: the first one at once, with the
// history, then one per sample.
func (o *Ops) events(w http.ResponseWriter, r *http.Request) {
	if _, ok := w.(http.Flusher); !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	ch := make(chan []byte, 4)
	o.subsMu.Lock()
	o.subs[ch] = struct{}{}
	o.subsMu.Unlock()
	defer func() {
		o.subsMu.Lock()
		delete(o.subs, ch)
		o.subsMu.Unlock()
	}()

	// The stream outlives the server's WriteTimeout: the write deadline is renewed for
	// every event, so only a page that stops reading for that long is cut. (ReadTimeout
	// does not apply: net/http clears the read deadline once a request without a body
	// has been read.)
	rc := http.NewResponseController(w)
	writeTimeout := WriteTimeout
	if srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server); ok && srv.WriteTimeout > 0 {
		writeTimeout = srv.WriteTimeout
	}
	send := func(b []byte) error {
		_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return err
		}
		return rc.Flush()
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	var sm sampler
	now := time.Now()
	s, st := sm.take(o.srv, now)
	first, _ := json.Marshal(o.liveState(now, s, st, true))
	if send(first) != nil {
		return
	}
	for {
		select {
		case <-r.Context().Done():
			return
		case b := <-ch:
			if send(b) != nil {
				return
			}
		}
	}
}
