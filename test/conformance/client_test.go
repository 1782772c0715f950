package conformance

import (
	"log/slog"
	"testing"

	"github.com/jm-directory/jm-directory-server/internal/config"
	"github.com/jm-directory/jm-directory-server/internal/dirtest"
)

// directory returns the directory to test: JM_DIRECTORY_ADDR when set (see
// dirtest.ExternalTarget), otherwise a fresh in-process server with default settings.
func directory(t *testing.T) *dirtest.Target {
	t.Helper()
	if tg, ok := dirtest.ExternalTarget(); ok {
		return tg
	}
	return startServer(t, nil)
}

// tuned returns an in-process server with adjusted settings; such tests cannot run
// against an external directory and are skipped there.
func tuned(t *testing.T, adjust func(*config.Config)) *dirtest.Target {
	t.Helper()
	if _, ok := dirtest.ExternalTarget(); ok {
		t.Skip("needs an in-process directory with custom settings")
	}
	return startServer(t, adjust)
}

func startServer(t *testing.T, adjust func(*config.Config)) *dirtest.Target {
	t.Helper()
	level := slog.LevelWarn
	if testing.Verbose() {
		level = slog.LevelDebug
	}
	return dirtest.Start(t, adjust, dirtest.Logger(t, level)).Target()
}
