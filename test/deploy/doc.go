// Package deploy validates the deployment files under deploy/: the Docker image and its
// build-context filter, the compose file with its tor sidecar and torrc, setup.sh, and
// the systemd unit with its environment file. The tests parse every file, check the
// settings each must have and that the files agree with each other and with the server's
// configuration names, and run the real tools where they exist: tor --verify-config and a
// short offline tor start on the torrc, systemd-analyze verify and security on the unit,
// and setup.sh in a temporary directory. A missing tool skips only the test that needs it.
package deploy
