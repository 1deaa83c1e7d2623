package com.smarttrade.client;

import com.smarttrade.v1.ExchangeAccountServiceGrpc;
import com.smarttrade.v1.PaperMarketServiceGrpc;
import com.smarttrade.v1.SmartTradeServiceGrpc;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.stub.MetadataUtils;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * The three services of smarttrade.v1 on one channel, authenticated as one tenant: every call
 * carries {@code authorization: Bearer <token>}, and every stub handed out has a deadline.
 */
public final class SmartTradeClients implements AutoCloseable {
  /** The deadline of the stubs handed out by {@link #trades()}, {@link #accounts()}, {@link #paper()}. */
  public static final Duration DEFAULT_DEADLINE = Duration.ofSeconds(10);

  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  private final ManagedChannel channel;
  private final SmartTradeServiceGrpc.SmartTradeServiceBlockingStub trades;
  private final ExchangeAccountServiceGrpc.ExchangeAccountServiceBlockingStub accounts;
  private final PaperMarketServiceGrpc.PaperMarketServiceBlockingStub paper;

  private SmartTradeClients(ManagedChannel channel) {
    this.channel = channel;
    this.trades = SmartTradeServiceGrpc.newBlockingStub(channel);
    this.accounts = ExchangeAccountServiceGrpc.newBlockingStub(channel);
    this.paper = PaperMarketServiceGrpc.newBlockingStub(channel);
  }

  /**
   * Connects to {@code target} ("127.0.0.1:50051") without TLS, as the quick start listens on
   * loopback only; build the channel yourself with TLS for anything else and pass it to
   * {@link #over(ManagedChannelBuilder, String)}.
   */
  public static SmartTradeClients connect(String target, String token) {
    return over(ManagedChannelBuilder.forTarget(target).usePlaintext(), token);
  }

  /** Builds the channel from {@code builder}, adding the bearer token to every call. */
  public static SmartTradeClients over(ManagedChannelBuilder<?> builder, String token) {
    Metadata headers = new Metadata();
    headers.put(AUTHORIZATION, "Bearer " + token);
    return new SmartTradeClients(
        builder.intercept(MetadataUtils.newAttachHeadersInterceptor(headers)).build());
  }

  /**
   * SmartTradeService, with a fresh {@link #DEFAULT_DEADLINE}. WatchSmartTrades runs until
   * cancelled: give it {@code trades().withDeadline(null)} or a longer deadline of its own.
   */
  public SmartTradeServiceGrpc.SmartTradeServiceBlockingStub trades() {
    return trades.withDeadlineAfter(DEFAULT_DEADLINE.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** ExchangeAccountService, with a fresh {@link #DEFAULT_DEADLINE}. */
  public ExchangeAccountServiceGrpc.ExchangeAccountServiceBlockingStub accounts() {
    return accounts.withDeadlineAfter(DEFAULT_DEADLINE.toMillis(), TimeUnit.MILLISECONDS);
  }

  /** PaperMarketService (the paper venue's sandbox), with a fresh {@link #DEFAULT_DEADLINE}. */
  public PaperMarketServiceGrpc.PaperMarketServiceBlockingStub paper() {
    return paper.withDeadlineAfter(DEFAULT_DEADLINE.toMillis(), TimeUnit.MILLISECONDS);
  }

  public ManagedChannel channel() {
    return channel;
  }

  /** Shuts the channel down, giving calls in flight up to five seconds. */
  @Override
  public void close() {
    channel.shutdown();
    try {
      if (!channel.awaitTermination(5, TimeUnit.SECONDS)) {
        channel.shutdownNow();
      }
    } catch (InterruptedException e) {
      channel.shutdownNow();
      Thread.currentThread().interrupt();
    }
  }
}
