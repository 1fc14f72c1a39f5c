package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestListenAndCall(t *testing.T) {
	dir, err := os.MkdirTemp("", "ctl")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s")
	// A stale socket (nobody listening) is replaced.
	ln, _ := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	ln.SetUnlinkOnClose(false)
	ln.Close()
	srv, err := Listen(path, func(conn net.Conn, line []byte) {
		var req struct{ Op string }
		json.Unmarshal(line, &req)
		if req.Op == "hello" {
			json.NewEncoder(conn).Encode(map[string]string{"greeting": "hi"})
			return
		}
		json.NewEncoder(conn).Encode(Reply{Error: "unknown op " + req.Op})
	})
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	// A live one is not.
	if _, err := Listen(path, nil); err == nil || !strings.Contains(err.Error(), "something is listening on it already") {
		t.Errorf("second listen: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var got struct{ Greeting string }
	if err := Call(ctx, path, map[string]string{"op": "hello"}, &got); err != nil || got.Greeting != "hi" {
		t.Errorf("call: %+v, %v", got, err)
	}
	if err := Call(ctx, path, map[string]string{"op": "nope"}, &got); err == nil || err.Error() != "unknown op nope" {
		t.Errorf("an error reply: %v", err)
	}
	srv.Close()
	if _, err := os.Stat(path); err == nil {
		t.Error("the socket file outlived Close")
	}
	if err := Call(ctx, path, nil, &got); !errors.Is(err, ErrNotRunning) {
		t.Errorf("call with nobody listening: %v", err)
	}
	// A regular file in the way is never removed.
	os.WriteFile(path, []byte("keep"), 0o600)
	if _, err := Listen(path, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listen over a file: %v", err)
	}
}
