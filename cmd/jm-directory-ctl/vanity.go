package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/jm-directory/jm-directory-server/internal/onionkey"
)

// The vanity command: jm-directory-ctl vanity PREFIX [--out FILE] [--workers N].
const (
	vanityCmd = "vanity"
	// defaultVanityOut is where the key goes without --out.
	defaultVanityOut = "./" + onionkey.SecretFileName
	// maxWorkers bounds --workers (each worker holds about 70 KiB of batch state).
	maxWorkers = 1024
	// envOnionKeyFile names the server's setting for its onion key file.
	envOnionKeyFile = "TOR_ONION_KEY_FILE"
)

// onionKeyPath is the server's key file inside its data dir.
var onionKeyPath = filepath.Join("onion", onionkey.SecretFileName)

// vanityCommand reports whether args (global flags first, as parseArgs reads them)
// name the vanity command, and returns the options so far and the arguments after it.
// Anything else, including a bad global flag or -h, is left to parseArgs.
func vanityCommand(args []string, env func(string) string) (*options, []string, bool) {
	o := defaults(env)
	fs := flagSet(prog, o)
	if fs.Parse(args) != nil {
		return nil, nil, false
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] != vanityCmd {
		return nil, nil, false
	}
	return o, rest[1:], true
}

// runVanityMain runs the vanity command until it is done or interrupted (SIGINT,
// SIGTERM).
func runVanityMain(args []string, o *options, env func(string) string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runVanity(ctx, args, o, env, stdout, stderr)
}

// vanityOptions are the vanity command's own arguments.
type vanityOptions struct {
	prefix  string
	out     string
	workers int
}

// parseVanity reads PREFIX and the flags, which may come before or after it.
func parseVanity(args []string, o *options) (vanityOptions, error) {
	v := vanityOptions{out: defaultVanityOut}
	fs := flag.NewFlagSet(prog+" "+vanityCmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&v.out, "out", v.out, "")
	fs.IntVar(&v.workers, "workers", v.workers, "")
	fs.StringVar(&o.dataDir, "data-dir", o.dataDir, "")
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return v, flagError(err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	switch {
	case len(positional) == 0:
		return v, errors.New("vanity: missing PREFIX (see -h)")
	case len(positional) > 1:
		return v, fmt.Errorf("vanity: unexpected argument %q after %s (see -h)", positional[1], positional[0])
	case v.workers < 0 || v.workers > maxWorkers:
		return v, fmt.Errorf("vanity: --workers: want 0 (one per CPU) to %d, got %d", maxWorkers, v.workers)
	case v.out == "":
		return v, errors.New("vanity: --out: empty file name")
	}
	p, err := onionkey.CheckPrefix(positional[0])
	if err != nil {
		return v, fmt.Errorf("vanity: %v", err)
	}
	v.prefix = p
	return v, nil
}

// runVanity implements "vanity": search, write the key, print the address.
func runVanity(ctx context.Context, args []string, o *options, env func(string) string, stdout, stderr io.Writer) int {
	v, err := parseVanity(args, o)
	switch {
	case errors.Is(err, errHelp):
		printVanityUsage(stdout)
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 2
	}
	// Fail now rather than after a long search.
	if err := checkOut(v.out); err != nil {
		fmt.Fprintf(stderr, "%s: vanity: %v\n", prog, err)
		return 1
	}

	workers := v.workers
	if workers == 0 {
		workers = runtime.NumCPU() // what Search does with 0
	}
	expected := onionkey.Expected(v.prefix)
	fmt.Fprintf(stderr, "%s: searching for an onion address starting with %q with %d workers; expect about %s tries\n",
		prog, v.prefix, workers, count(expected))
	start := time.Now()
	k, err := onionkey.Search(ctx, v.prefix, workers, func(tried uint64) {
		fmt.Fprintf(stderr, "%s: %s\n", prog, progressLine(tried, time.Since(start), expected))
	})
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(stderr, "%s: vanity: interrupted; no key written\n", prog)
		} else {
			fmt.Fprintf(stderr, "%s: vanity: %v\n", prog, err)
		}
		return 1
	}
	if err := onionkey.WriteSecretFile(v.out, k); err != nil {
		fmt.Fprintf(stderr, "%s: vanity: found %s.onion but could not save its key: %v\n", prog, k.Onion(), err)
		return 1
	}
	fmt.Fprintf(stdout, "%s.onion\n", k.Onion())

	abs, err := filepath.Abs(v.out)
	if err != nil {
		abs = v.out
	}
	dest := filepath.Join("<data dir>", onionKeyPath)
	if dir := dataDir(o, env); dir != "" {
		dest = filepath.Join(dir, onionKeyPath)
	}
	fmt.Fprintf(stderr, "%s: wrote the key to %s (mode 0600, tor's %s format) in %s\n",
		prog, v.out, onionkey.SecretFileName, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(stderr, "%s: to use it, stop the server and copy it to %s (keep mode 0600; this replaces the server's current address), or set %s=%s (tor_onion_key_file in config.toml)\n",
		prog, dest, envOnionKeyFile, abs)
	return 0
}

// checkOut refuses an existing output file and a directory that is missing (it would
// be created), not a directory, or not writable.
func checkOut(out string) error {
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("%s already exists; refusing to overwrite it (choose another --out)", out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	dir := filepath.Dir(out)
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // WriteSecretFile creates it (mode 0700)
	case err != nil:
		return err
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	f, err := os.CreateTemp(dir, ".jm-directory-ctl-probe-*")
	if err != nil {
		return fmt.Errorf("cannot write in %s: %v", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// progressLine is one progress report, e.g.
// "tried 1.2M keys, 180k/s, expected 33.5M, ETA 3m05s".
func progressLine(tried uint64, elapsed time.Duration, expected float64) string {
	n := float64(tried)
	rate := 0.0
	if elapsed > 0 {
		rate = n / elapsed.Seconds()
	}
	eta := "ETA unknown"
	switch {
	case n >= expected:
		eta = "past the expected count, keep waiting"
	case rate > 0:
		eta = "ETA " + duration((expected-n)/rate)
	}
	return fmt.Sprintf("tried %s keys, %s/s, expected %s, %s", count(n), count(rate), count(expected), eta)
}

// count writes n with a k, M, G, T, P or E suffix: "950", "1.2M", "180k", "33.5M".
func count(n float64) string {
	if n < 999.5 {
		return fmt.Sprintf("%.0f", n)
	}
	units := "kMGTPE"
	i := -1
	for n >= 999.5 && i < len(units)-1 {
		n /= 1000
		i++
	}
	if n < 99.95 {
		return fmt.Sprintf("%.1f%c", n, units[i])
	}
	return fmt.Sprintf("%.0f%c", n, units[i])
}

// duration writes seconds as "45s", "3m05s", "2h07m" or "12d03h"; beyond about 3 years
// it says how many years.
func duration(sec float64) string {
	if math.IsInf(sec, 0) || math.IsNaN(sec) || sec > 100*365*86400 {
		return "more than a century"
	}
	s := int64(math.Round(sec))
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	case s < 3*365*86400:
		return fmt.Sprintf("%dd%02dh", s/86400, s%86400/3600)
	}
	return fmt.Sprintf("%.0f years", sec/(365*86400))
}

// printAllUsage writes the help of every command.
func printAllUsage(w io.Writer, o *options) {
	printUsage(w, o)
	fmt.Fprintln(w)
	fmt.Fprintf(w, orderbookUsage, prog)
	fmt.Fprintln(w)
	printVanityUsage(w)
	fmt.Fprintln(w)
	fmt.Fprintf(w, probeUsage, prog)
	fmt.Fprintln(w)
	fmt.Fprintf(w, importUsage, prog, onionkey.SecretFileName)
}

// printVanityUsage writes the vanity command's help.
func printVanityUsage(w io.Writer) {
	fmt.Fprintf(w, `Usage: %[1]s vanity PREFIX [--out FILE] [--workers N] [--data-dir DIR]

Search for an onion address starting with PREFIX (1-%[2]d characters of a-z and 2-7;
each character multiplies the expected work by 32) and save its key.
  --out FILE           where to write the key, in tor's %[3]s format,
                       mode 0600; an existing file is never overwritten
                       (default: %[4]s)
  --workers N          search goroutines (default 0: one per CPU)
  --data-dir DIR       only used to say where the server reads the key:
                       <data dir>/%[5]s (or $%[6]s)
Progress goes to stderr about once a second; the address (NAME.onion) to stdout.
Ctrl-C stops the search without writing anything (exit 1).
`, prog, onionkey.MaxPrefixLen, onionkey.SecretFileName, defaultVanityOut, onionKeyPath, envOnionKeyFile)
}
