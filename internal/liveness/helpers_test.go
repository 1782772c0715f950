package liveness_test

import (
	"log/slog"
	"testing"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/liveness"
	"github.com/jm-directory/jm-directory-server/internal/peertest"
)

// settings are the joinmarket-ng / joinmarket-rs defaults (docs/protocol.md §7).
var settings = liveness.Settings{Sweep: 60 * time.Second, Idle: 600 * time.Second, HardEvict: 1500 * time.Second, PongWait: 30 * time.Second}

// harness is the shared peer harness with a sweeper over its registry and router.
type harness struct {
	*peertest.Harness
	t  *testing.T
	sw *liveness.Sweeper
}

func wrap(t *testing.T, h *peertest.Harness) *harness {
	return &harness{Harness: h, t: t, sw: liveness.New(h.Reg, h.Rt, settings, slog.New(slog.DiscardHandler))}
}

// newHarness must be called inside a synctest bubble; see peertest.Harness.
func newHarness(t *testing.T, dnNick, dnLocation string) *harness {
	t.Helper()
	return wrap(t, peertest.New(t, dnNick, dnLocation))
}

// bubble runs f in a synctest bubble with a fresh harness that is torn down afterwards.
func bubble(t *testing.T, dnNick, dnLocation string, f func(t *testing.T, h *harness)) {
	t.Helper()
	peertest.Bubble(t, dnNick, dnLocation, func(t *testing.T, h *peertest.Harness) {
		f(t, wrap(t, h))
	})
}
