package config

import (
	"slices"
	"strings"
	"testing"
)

// TestUnknownKeys: keys in [directory_server] that no setting uses, and variables with
// this server's nested prefixes that name no setting, are reported; known names in any
// case, flat names and other prefixes are not.
func TestUnknownKeys(t *testing.T) {
	f := newFixture(t)
	f.writeTOML(t, "[directory_server]\nport = 6000\nfuture_key = 1\n[other]\nx = 1\n")
	f.writeDotEnv(t, "DIRECTORY_SERVER__MOTDD=hi\nMOTD=hello\n")
	c := mustLoad(t, f.opts(nil,
		"DIRECTORY_SERVER__PROT=1",         // typo
		"directory_server__max_peers=5",    // known, any case
		"NETWORK_CONFIG__NETWROK=signet",   // typo
		"NETWORK_CONFIG__NETWORK=testnet",  // known
		"LOGGING__LEVLE=debug",             // typo
		"LOGGING__LEVEL=INFO",              // known
		"PORTT=1",                          // flat: not this server's prefix
		"OTHER__PORT=1", "JOINMARKET_X=1")) // other prefixes
	want := []string{
		"directory_server.future_key (config.toml)",
		"DIRECTORY_SERVER__PROT (environment)",
		"LOGGING__LEVLE (environment)",
		"NETWORK_CONFIG__NETWROK (environment)",
		"DIRECTORY_SERVER__MOTDD (.env)",
	}
	if got := c.UnknownKeys(); !slices.Equal(got, want) {
		t.Errorf("UnknownKeys() = %q\nwant %q", got, want)
	}
	if c.MaxPeers != 5 || c.Network != "testnet" || c.MOTD != "hello" || c.Port != 6000 {
		t.Errorf("known settings not applied: %+v", c)
	}
	if d := c.Describe(); !hasLine(d, "# ignored environment: DIRECTORY_SERVER__PROT (environment), LOGGING__LEVLE (environment), NETWORK_CONFIG__NETWROK (environment), DIRECTORY_SERVER__MOTDD (.env)") {
		t.Errorf("Describe() does not list the unknown variables:\n%s", d)
	}

	clean := mustLoad(t, newFixture(t).opts(nil, "DIRECTORY_SERVER__PORT=1", "PORT=2"))
	if got := clean.UnknownKeys(); got != nil {
		t.Errorf("UnknownKeys() = %q with only known names", got)
	}
	if strings.Contains(clean.Describe(), "# ignored") {
		t.Errorf("Describe() lists ignored keys:\n%s", clean.Describe())
	}
	if (Default()).UnknownKeys() != nil {
		t.Error("a Config not from Load has unknown keys")
	}
}
