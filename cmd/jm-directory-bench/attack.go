package main

import (
	"context"
	"flag"
	"slices"
	"strings"
)

// attack is an adversarial scenario: an attack on the directory run beside honest peers,
// reporting the victims' view (do honest peers still join, get their messages, stay
// connected?) with a pass line. Each lives in a file of its own and registers itself in
// attacks from an init function.
type attack struct {
	usage string // one line for the usage text: flags and what it does
	// setup registers the scenario's flags on fs (after c.register, if it uses the common
	// flags) and returns the function that runs it once the flags are parsed.
	setup func(ctx context.Context, fs *flag.FlagSet, c *common) func() (*report, error)
}

// attacks are the adversarial scenarios, by name.
var attacks = map[string]attack{}

// attackUsage lists the adversarial scenarios for the usage text.
func attackUsage() string {
	if len(attacks) == 0 {
		return ""
	}
	names := make([]string, 0, len(attacks))
	for n := range attacks {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	b.WriteString("\nattack scenarios (the victims' view, with a pass line):\n")
	for _, n := range names {
		b.WriteString("  " + n + strings.Repeat(" ", max(1, 11-len(n))) + attacks[n].usage + "\n")
	}
	return b.String()
}
