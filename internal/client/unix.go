package client

import (
	"net"
	"time"
)

func dialUnix(sock string) (net.Conn, error) {
	return net.DialTimeout("unix", sock, 5*time.Second)
}
