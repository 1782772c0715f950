module github.com/jm-directory/jm-directory-server

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/decred/dcrd/dcrec/secp256k1/v4 v4.4.1
	github.com/joho/godotenv v1.5.1
	github.com/mr-tron/base58 v1.3.0
	golang.org/x/time v0.16.0
)
