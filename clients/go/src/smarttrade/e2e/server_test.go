package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const servingWithin = 60 * time.Second

// server is `smarttrade serve` as users run it: a separate process on the embedded
// PostgreSQL, on a free loopback port, in a temporary data directory.
type server struct {
	Address string
	Token   string
	cmd     *exec.Cmd
	dataDir string
	stderr  *lockedBuffer
	exited  chan error
}

// serveBinary is $SMARTTRADE_BIN, else the service's virtualenv at the repository root
// (go test runs in clients/go/src/smarttrade/e2e).
func serveBinary() (string, error) {
	if bin := os.Getenv("SMARTTRADE_BIN"); bin != "" {
		return bin, nil
	}
	return filepath.Abs(filepath.Join("..", "..", "..", "..", "..", ".venv", "bin", "smarttrade"))
}

func freePort() (int, error) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer probe.Close()
	return probe.Addr().(*net.TCPAddr).Port, nil
}

// startServer starts the service and returns once its health says SERVING.
func startServer() (*server, error) {
	bin, err := serveBinary()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dataDir, err := os.MkdirTemp("", "smarttrade-go-e2e-")
	if err != nil {
		return nil, err
	}
	s := &server{
		Address: fmt.Sprintf("127.0.0.1:%d", port),
		dataDir: dataDir,
		stderr:  &lockedBuffer{},
		exited:  make(chan error, 1),
	}
	s.cmd = exec.Command(bin, "serve", "--data-dir", filepath.Join(dataDir, "data"), "--listen", s.Address)
	s.cmd.Env = cleanEnvironment()
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dataDir)
		return nil, err
	}
	go func() { s.exited <- s.cmd.Wait() }()
	if err := s.waitServing(); err != nil {
		s.Stop()
		return nil, err
	}
	token, err := os.ReadFile(filepath.Join(dataDir, "data", "local-token"))
	if err != nil {
		s.Stop()
		return nil, err
	}
	s.Token = strings.TrimSpace(string(token))
	return s, nil
}

// cleanEnvironment is a quick start: no tokens or database from the caller's environment.
func cleanEnvironment() []string {
	var env []string
	for _, entry := range os.Environ() {
		if !strings.HasPrefix(entry, "SMARTTRADE_") {
			env = append(env, entry)
		}
	}
	return env
}

func (s *server) waitServing() error {
	conn, err := grpc.Dial(s.Address, grpc.WithInsecure())
	if err != nil {
		return err
	}
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(servingWithin)
	for {
		select {
		case err := <-s.exited:
			s.exited <- err
			return fmt.Errorf("smarttrade serve exited early (%v):\n%s", err, s.stderr)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		answer, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
		cancel()
		if err == nil && answer.GetStatus() == healthpb.HealthCheckResponse_SERVING {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not SERVING within %s:\n%s", servingWithin, s.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop sends SIGTERM, waits for a clean exit and removes the data directory.
func (s *server) Stop() error {
	defer os.RemoveAll(s.dataDir)
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			return fmt.Errorf("smarttrade serve: %v:\n%s", err, s.stderr)
		}
		return nil
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		return fmt.Errorf("smarttrade serve did not stop within 30 s:\n%s", s.stderr)
	}
}

// lockedBuffer keeps the last output of the process; exec writes it from its own goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	text := b.buf.String()
	if len(text) > 4000 {
		text = text[len(text)-4000:]
	}
	return text
}
