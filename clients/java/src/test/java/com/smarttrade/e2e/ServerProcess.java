package com.smarttrade.e2e;

import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.Comparator;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * {@code smarttrade serve} as users run it: a separate process on the embedded PostgreSQL, on a
 * free loopback port, in a temporary data directory; the local token read from that directory.
 */
final class ServerProcess implements AutoCloseable {
  private static final Duration SERVING_WITHIN = Duration.ofSeconds(60);

  final String target;
  final String token;
  private final Process process;
  private final Path root;

  private ServerProcess(String target, String token, Process process, Path root) {
    this.target = target;
    this.token = token;
    this.process = process;
    this.root = root;
  }

  /** Starts {@code $SMARTTRADE_BIN} (default ../../.venv/bin/smarttrade) and waits for SERVING. */
  static ServerProcess start() throws IOException, InterruptedException {
    String bin = System.getenv().getOrDefault("SMARTTRADE_BIN", "../../.venv/bin/smarttrade");
    Path root = Files.createTempDirectory("smarttrade-java-e2e-");
    String target = "127.0.0.1:" + freePort();
    ProcessBuilder builder =
        new ProcessBuilder(bin, "serve", "--data-dir", root.resolve("data").toString(), "--listen", target)
            .redirectOutput(ProcessBuilder.Redirect.DISCARD)
            .redirectError(root.resolve("serve.log").toFile());
    // A clean quick start: no tokens or database from the caller's environment.
    builder.environment().keySet().removeIf(name -> name.startsWith("SMARTTRADE_"));
    Process process;
    try {
      process = builder.start();
    } catch (IOException e) {
      deleteRecursively(root);
      throw e;
    }
    ServerProcess server = new ServerProcess(target, "", process, root);
    try {
      server.waitServing();
      String token = Files.readString(root.resolve("data").resolve("local-token")).strip();
      return new ServerProcess(target, token, process, root);
    } catch (IOException | RuntimeException | InterruptedException e) {
      try {
        server.close();
      } catch (IOException | RuntimeException stopping) {
        e.addSuppressed(stopping);
      }
      throw e;
    }
  }

  private static int freePort() throws IOException {
    try (ServerSocket probe = new ServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
      return probe.getLocalPort();
    }
  }

  private void waitServing() throws InterruptedException, IOException {
    ManagedChannel channel = ManagedChannelBuilder.forTarget(target).usePlaintext().build();
    try {
      HealthGrpc.HealthBlockingStub health = HealthGrpc.newBlockingStub(channel);
      Instant deadline = Instant.now().plus(SERVING_WITHIN);
      while (true) {
        if (!process.isAlive()) {
          throw new IllegalStateException(
              "smarttrade serve exited early (" + process.exitValue() + "):\n" + log());
        }
        try {
          HealthCheckResponse answer =
              health.withDeadlineAfter(1, TimeUnit.SECONDS).check(HealthCheckRequest.getDefaultInstance());
          if (answer.getStatus() == HealthCheckResponse.ServingStatus.SERVING) {
            return;
          }
        } catch (StatusRuntimeException notYet) {
          // not listening yet, or still recovering its trades
        }
        if (Instant.now().isAfter(deadline)) {
          throw new IllegalStateException("not SERVING within " + SERVING_WITHIN + ":\n" + log());
        }
        Thread.sleep(100);
      }
    } finally {
      channel.shutdownNow();
    }
  }

  private boolean waitForExit() {
    try {
      return process.waitFor(30, TimeUnit.SECONDS);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return false;
    }
  }

  private String log() throws IOException {
    String text = Files.readString(root.resolve("serve.log"), StandardCharsets.UTF_8);
    return text.length() > 4000 ? text.substring(text.length() - 4000) : text;
  }

  /** SIGTERM, then a clean exit (status 0) within 30 s; removes the data directory. */
  @Override
  public void close() throws IOException {
    try {
      process.destroy();
      if (!waitForExit()) {
        process.destroyForcibly();
        throw new IllegalStateException("smarttrade serve did not stop within 30 s:\n" + log());
      }
      if (process.exitValue() != 0) {
        throw new IllegalStateException(
            "smarttrade serve exited with " + process.exitValue() + ":\n" + log());
      }
    } finally {
      deleteRecursively(root);
    }
  }

  private static void deleteRecursively(Path root) throws IOException {
    try (Stream<Path> files = Files.walk(root)) {
      files.sorted(Comparator.reverseOrder()).forEach(path -> path.toFile().delete());
    }
  }
}
