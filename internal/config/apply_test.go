package config

import (
	"reflect"
	"slices"
	"testing"
	"time"
)

// restartOnly are the settings a reload must not change: they are read once, at start.
// The list pins the classification in the settings table (it was the restart switch
// in server.Reload before the table said it).
var restartOnly = []string{
	"data_dir", "network", "host", "port", "location", "nick_auth_mode", "nick_auth_directory_id",
	"health_check_host", "health_check_port", "ops_token", "ops_tls_cert", "ops_tls_key", "status_hide_nicks", "pprof",
	"tor_mode", "tor_control_host", "tor_control_port", "tor_control_socket", "tor_control_password",
	"tor_cookie_file", "tor_binary", "tor_hidden_service_dir", "tor_onion_key_file", "onion_virtual_port",
	"tor_pow", "allow_clearnet", "tor_socks_host", "tor_socks_port", "tor_proxy_protocol", "log_format",
}

// changeEverything returns c with every setting of the table set to another value.
func changeEverything(t *testing.T, table []setting, c Config) Config {
	t.Helper()
	for _, s := range table {
		switch p := s.field(&c).(type) {
		case *string:
			*p += "x"
		case *int:
			*p++
		case *float64:
			*p++
		case *time.Duration:
			*p += time.Second
		case *bool:
			*p = !*p
		default:
			t.Fatalf("%s: field type %T", s.key, p)
		}
	}
	return c
}

func keysOf(changes []Change) []string {
	var out []string
	for _, c := range changes {
		out = append(out, c.Key)
	}
	return out
}

// TestApplyLiveAndRestart: a reload applies exactly the live rows; every other row keeps
// its current value and is reported as needing a restart, never as changed.
func TestApplyLiveAndRestart(t *testing.T) {
	table := settingsTable()
	cur := Default()
	cur.DataDir = "/data"
	next := changeEverything(t, table, cur)
	next.CheckConfig = true

	applied, changes, restart := Apply(cur, next)

	var wantLive []string
	for _, s := range table {
		if !slices.Contains(restartOnly, s.key) {
			wantLive = append(wantLive, s.key)
		}
		if s.live == slices.Contains(restartOnly, s.key) {
			t.Errorf("%s: live = %v in the settings table", s.key, s.live)
		}
	}
	if got := keysOf(restart); !slices.Equal(got, tableOrder(table, restartOnly)) {
		t.Errorf("restart = %v, want %v", got, tableOrder(table, restartOnly))
	}
	if got := keysOf(changes); !slices.Equal(got, wantLive) {
		t.Errorf("changes = %v, want %v", got, wantLive)
	}
	// What is reported as changed is exactly what changed in force, and what is
	// reported as needing a restart is exactly what is still missing.
	if d := Diff(cur, applied); !reflect.DeepEqual(d, changes) {
		t.Errorf("Diff(cur, applied) = %v, want the reported changes %v", d, changes)
	}
	if d := Diff(applied, next); !slices.Equal(keysOf(d), keysOf(restart)) {
		t.Errorf("Diff(applied, next) = %v, want the refused changes %v", keysOf(d), keysOf(restart))
	}
	if applied.Network != cur.Network || applied.Port != cur.Port || applied.OpsToken != cur.OpsToken {
		t.Errorf("restart-only values applied: %+v", applied)
	}
	if applied.MOTD != next.MOTD || applied.MessageRateLimit != next.MessageRateLimit || applied.LogLevel != next.LogLevel {
		t.Errorf("live values not applied: %+v", applied)
	}
	if !applied.CheckConfig {
		t.Error("a field no setting names is not next's")
	}
	for _, c := range append(changes, restart...) {
		if c.Key == "ops_token" && (c.Old != redactedChanged || c.New != redactedChanged) {
			t.Errorf("secret change shown: %+v", c)
		}
	}
}

// tableOrder returns keys in the table's order.
func tableOrder(table []setting, keys []string) []string {
	var out []string
	for _, s := range table {
		if slices.Contains(keys, s.key) {
			out = append(out, s.key)
		}
	}
	return out
}

// TestApplyDefaultRestart: a row nobody marked live needs a restart.
func TestApplyDefaultRestart(t *testing.T) {
	if (setting{}).live || dsSetting("new_setting", kindInt, "", "", nil, nil).live {
		t.Fatal("a new setting row is live by default")
	}
	motd := dsSetting("motd", kindString, "", "", nil, func(c *Config) any { return &c.MOTD })
	rate := live(dsSetting("message_rate_limit", kindFloat, "", "", nil, func(c *Config) any { return &c.MessageRateLimit }))
	cur := Default()
	next := cur
	next.MOTD, next.MessageRateLimit = "new", 1
	applied, changes, restart := apply([]setting{motd, rate}, cur, next)
	if applied.MOTD != cur.MOTD || applied.MessageRateLimit != 1 {
		t.Errorf("applied motd %q rate %v", applied.MOTD, applied.MessageRateLimit)
	}
	if !slices.Equal(keysOf(changes), []string{"message_rate_limit"}) || !slices.Equal(keysOf(restart), []string{"motd"}) {
		t.Errorf("changes %v restart %v", changes, restart)
	}
}

// TestApplyNoFalseChange: a reload that only touches a restart-only setting changes
// nothing and reports nothing as changed; one that touches nothing reports nothing.
func TestApplyNoFalseChange(t *testing.T) {
	cur := Default()
	next := cur
	next.Network = "signet"
	applied, changes, restart := Apply(cur, next)
	if len(changes) != 0 || Diff(cur, applied) != nil {
		t.Errorf("changes %v, Diff(cur, applied) %v: want none", changes, Diff(cur, applied))
	}
	want := []Change{{Key: "network", Old: `"regtest"`, New: `"signet"`}}
	if !reflect.DeepEqual(restart, want) {
		t.Errorf("restart = %v, want %v", restart, want)
	}
	if _, changes, restart := Apply(cur, cur); changes != nil || restart != nil {
		t.Errorf("no difference gave changes %v restart %v", changes, restart)
	}
}
