module github.com/jm-directory/jm-directory-server

go 1.26.8
