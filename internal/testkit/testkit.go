// Package testkit holds the two helpers every test package here shares: Eventually, the
// one bounded way to wait for something to happen, and NeedTool, the one rule for tests
// that need an outside program (tor, chromium). It imports nothing of the project, so any
// package's tests can use it without an import cycle.
package testkit

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Timeout bounds Eventually. Generous for the race detector on a shared, loaded machine:
// a passing run never comes close, and a failing one says what it was waiting for.
const Timeout = 20 * time.Second

// Eventually polls cond until it reports true and fails the test, naming what never
// happened, if it does not within Timeout. Use it instead of a sleep to wait for an event:
// the condition must be something the test can observe (a count, a status field, a file).
// Inside a testing/synctest bubble its sleeps are virtual.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	EventuallyWithin(t, Timeout, what, cond)
}

// EventuallyWithin is Eventually with its own bound, for waits that are known to be long
// (a Tor network bootstrapping, an onion descriptor propagating).
func EventuallyWithin(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(d, cond) {
		t.Fatalf("%s did not happen within %v", what, d)
	}
}

// Poll is the loop behind Eventually for callers that report a failure their own way
// (helpers that return an error): it polls cond until it reports true or d has passed,
// and says which. The first checks come quickly; the interval grows to 50 ms.
func Poll(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	wait := time.Millisecond
	for !cond() {
		if !time.Now().Before(deadline) {
			return cond()
		}
		time.Sleep(min(wait, time.Until(deadline)))
		wait = min(2*wait, 50*time.Millisecond)
	}
	return true
}

// NeedTool returns the path of the program name on PATH. Without it the test is skipped
// with a one-line reason, except under CI=true, where a missing tool is a failure: CI
// installs every tool a test needs, so a skip there would hide a broken install step.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s is not on PATH (CI must install it)", name)
	}
	t.Skipf("%s is not on PATH; install it to run this test", name)
	return ""
}

// RepoRoot is the repository root: the nearest directory holding go.mod at or above the
// test's working directory (its package directory).
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		up := filepath.Dir(dir)
		if up == dir {
			t.Fatal("testkit: no go.mod at or above the test's directory")
		}
		dir = up
	}
}
