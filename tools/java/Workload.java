// A real Java consumer (Apache Kafka's kafka-clients) for lagwatch's tests and demo, on
// either group protocol: classic, or the KIP-848 consumer protocol.
//
//   java -cp 'JARS/*:CLASSES' Workload consume BOOTSTRAP TOPIC GROUP PROTOCOL RATE [CLIENT_ID
//                                              [ISOLATION]]
//   java -cp 'JARS/*:CLASSES' Workload describe BOOTSTRAP GROUP
//   java -cp 'JARS/*:CLASSES' Workload share BOOTSTRAP TOPIC GROUP
//   java -cp 'JARS/*:CLASSES' Workload transact BOOTSTRAP TOPIC TXN_ID COMMITS OPEN TIMEOUT_MS
//
// consume reads TOPIC at most RATE messages a second (0: as fast as it can), committing what
// it read after each poll. It prints one JSON line per event on stdout ("assigned" with the
// partitions and the member's epoch or generation) and takes commands on stdin:
//   stuck [S]  a poison pill: seek back to the committed offsets and commit them again every
//           S seconds (2 by default)
//   rate N  read at most N messages a second from now on
//   stop    leave the group, close the client and exit
// ISOLATION is read_uncommitted (the default) or read_committed.
// describe prints Admin.describeConsumerGroups for GROUP as one JSON line.
// transact commits COMMITS transactions of 10 records to TOPIC as transactional id TXN_ID
// (transaction.timeout.ms TIMEOUT_MS), then begins one more, writes OPEN records in it and
// neither commits nor aborts it: it prints "open" and waits for "stop" on stdin, then exits
// without ending the transaction (the broker aborts it once it times out).
// share enables share groups (the share.version feature, off by default before Kafka 4.2) and
// reads TOPIC as a member of the share group GROUP (KIP-932), printing "joined" after its
// first poll; it takes "stop" on stdin.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.FeatureUpdate;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.UpdateFeaturesOptions;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class Workload {
    private static volatile boolean stuck = false;
    private static volatile long recommitMs = 2000;
    private static volatile double rate = 0;
    private static volatile boolean stopping = false;

    public static void main(String[] args) throws Exception {
        if (args.length >= 6 && args[0].equals("consume")) {
            consume(args[1], args[2], args[3], args[4], Double.parseDouble(args[5]),
                    args.length > 6 ? args[6] : "workload-" + args[4],
                    args.length > 7 ? args[7] : "read_uncommitted",
                    args.length > 8 ? Arrays.copyOfRange(args, 8, args.length) : new String[0]);
        } else if (args.length == 7 && args[0].equals("transact")) {
            transact(args[1], args[2], args[3], Integer.parseInt(args[4]),
                    Integer.parseInt(args[5]), args[6]);
        } else if (args.length == 3 && args[0].equals("describe")) {
            describe(args[1], args[2]);
        } else if (args.length == 4 && args[0].equals("share")) {
            share(args[1], args[2], args[3]);
        } else {
            System.err.println("usage: Workload consume BOOTSTRAP TOPIC GROUP PROTOCOL RATE"
                    + " [CLIENT_ID [ISOLATION [KEY=VALUE...]]] | describe BOOTSTRAP GROUP");
            System.exit(2);
        }
    }

    private static void consume(String bootstrap, String topic, String group, String protocol,
                                double initialRate, String clientId, String isolation,
                                String[] settings) throws Exception {
        rate = initialRate;
        Properties props = new Properties();
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, clientId);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG,
                String.valueOf(Math.max(1, (int) (initialRate > 0 ? initialRate / 5 : 500))));
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        props.put(ConsumerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "1000");
        if (protocol.equals("classic")) {
            props.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
            props.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "1000");
        }
        for (String setting : settings) {  // consumer settings as an application sets them
            String[] kv = setting.split("=", 2);
            props.put(kv[0], kv[1]);
        }
        // with enable.auto.commit=true the consumer commits on its own timer, never here
        boolean autoCommit = "true".equals(props.get(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG));
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props);
        Thread commands = new Thread(() -> readCommands(consumer::wakeup), "commands");
        commands.setDaemon(true);
        commands.start();
        consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            @Override public void onPartitionsRevoked(Collection<TopicPartition> parts) { }
            @Override public void onPartitionsAssigned(Collection<TopicPartition> parts) {
                emit("assigned", consumer);
            }
        });
        long recommitAt = 0;
        try {
            while (!stopping) {
                long started = System.nanoTime();
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(200));
                if (stuck) {
                    Map<TopicPartition, OffsetAndMetadata> at = new HashMap<>();
                    for (Map.Entry<TopicPartition, OffsetAndMetadata> e
                            : consumer.committed(consumer.assignment()).entrySet()) {
                        long offset = e.getValue() == null ? 0 : e.getValue().offset();
                        consumer.seek(e.getKey(), offset);
                        at.put(e.getKey(), new OffsetAndMetadata(offset));
                    }
                    if (System.currentTimeMillis() >= recommitAt && !at.isEmpty()) {
                        recommitAt = System.currentTimeMillis() + recommitMs;
                        consumer.commitSync(at);
                    }
                    continue;
                }
                if (!records.isEmpty() && !autoCommit) {
                    consumer.commitSync();
                }
                double r = rate;
                if (r > 0) {
                    long wantNs = (long) (records.count() / r * 1e9);
                    long leftNs = wantNs - (System.nanoTime() - started);
                    if (leftNs > 0) {
                        TimeUnit.NANOSECONDS.sleep(leftNs);
                    }
                }
            }
        } catch (WakeupException e) {
            // stop was asked for while polling
        } finally {
            consumer.close(Duration.ofSeconds(10));
            emit("closed", null);
        }
    }

    private static void transact(String bootstrap, String topic, String txnId, int commits,
                                 int open, String timeoutMs) throws Exception {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        props.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, timeoutMs);
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class);
        KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props);
        producer.initTransactions();
        byte[] value = "payment".getBytes(StandardCharsets.UTF_8);
        for (int t = 0; t < commits; t++) {
            producer.beginTransaction();
            for (int i = 0; i < 10; i++) {
                producer.send(new ProducerRecord<>(topic, 0, null, value));
            }
            producer.commitTransaction();
        }
        producer.beginTransaction();
        for (int i = 0; i < open; i++) {
            producer.send(new ProducerRecord<>(topic, 0, null, value));
        }
        producer.flush();
        emit("open", null);
        Thread commands = new Thread(() -> readCommands(() -> { }), "commands");
        commands.setDaemon(true);
        commands.start();
        while (!stopping) {
            TimeUnit.MILLISECONDS.sleep(100);
        }
        // exit without ending the transaction: closing would wait to abort or fence it
        System.exit(0);
    }

    private static void share(String bootstrap, String topic, String group) throws Exception {
        Properties admin = new Properties();
        admin.put("bootstrap.servers", bootstrap);
        try (Admin client = Admin.create(admin)) {
            // finalized from Kafka 4.2 on (share groups are production-ready there)
            FinalizedVersionRange finalized = client.describeFeatures().featureMetadata()
                    .get(30, TimeUnit.SECONDS).finalizedFeatures().get("share.version");
            if (finalized == null || finalized.maxVersionLevel() < 1) {
                client.updateFeatures(Map.of("share.version", new FeatureUpdate((short) 1,
                        FeatureUpdate.UpgradeType.UPGRADE)), new UpdateFeaturesOptions())
                        .all().get(30, TimeUnit.SECONDS);
            }
        }
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.CLIENT_ID_CONFIG, "workload-share");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class);
        try (KafkaShareConsumer<byte[], byte[]> consumer = new KafkaShareConsumer<>(props)) {
            Thread commands = new Thread(() -> readCommands(consumer::wakeup), "commands");
            commands.setDaemon(true);
            commands.start();
            consumer.subscribe(List.of(topic));
            boolean joined = false;
            while (!stopping) {
                try {
                    consumer.poll(Duration.ofMillis(200));
                } catch (WakeupException e) {
                    break;
                }
                if (!joined) {
                    joined = true;
                    emit("joined", null);
                }
            }
        }
        emit("closed", null);
    }

    private static void readCommands(Runnable wakeup) {
        try (BufferedReader in = new BufferedReader(
                new InputStreamReader(System.in, StandardCharsets.UTF_8))) {
            String line;
            while ((line = in.readLine()) != null) {
                line = line.trim();
                if (line.equals("stuck") || line.startsWith("stuck ")) {
                    if (line.startsWith("stuck ")) {
                        recommitMs = (long) (Double.parseDouble(line.substring(6)) * 1000);
                    }
                    stuck = true;
                } else if (line.startsWith("rate ")) {
                    rate = Double.parseDouble(line.substring(5));
                } else if (line.equals("stop")) {
                    break;
                }
            }
        } catch (Exception e) {
            // stdin closed or unreadable: stop as if asked
        }
        stopping = true;
        wakeup.run();
    }

    private static synchronized void emit(String event, KafkaConsumer<byte[], byte[]> consumer) {
        StringBuilder out = new StringBuilder("{\"event\":\"").append(event).append('"');
        if (consumer != null) {
            out.append(",\"epoch\":").append(consumer.groupMetadata().generationId());
            out.append(",\"member_id\":").append(quote(consumer.groupMetadata().memberId()));
            out.append(",\"partitions\":").append(partitions(consumer.assignment()));
        }
        System.out.println(out.append('}'));
        System.out.flush();
    }

    private static void describe(String bootstrap, String group) throws Exception {
        Properties props = new Properties();
        props.put("bootstrap.servers", bootstrap);
        try (Admin admin = Admin.create(props)) {
            ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group))
                    .describedGroups().get(group).get(30, TimeUnit.SECONDS);
            StringBuilder out = new StringBuilder("{\"group\":").append(quote(d.groupId()));
            out.append(",\"type\":").append(quote(d.type().toString()));
            out.append(",\"state\":").append(quote(d.groupState().toString()));
            out.append(",\"epoch\":").append(d.groupEpoch().orElse(-1));
            out.append(",\"assignment_epoch\":").append(d.targetAssignmentEpoch().orElse(-1));
            out.append(",\"assignor\":").append(quote(d.partitionAssignor()));
            List<String> members = new ArrayList<>();
            for (MemberDescription m : d.members()) {
                members.add("{\"member_id\":" + quote(m.consumerId())
                        + ",\"instance_id\":" + quote(m.groupInstanceId().orElse(null))
                        + ",\"client_id\":" + quote(m.clientId())
                        + ",\"host\":" + quote(m.host())
                        + ",\"member_epoch\":" + m.memberEpoch().orElse(-1)
                        + ",\"assignment\":" + partitions(m.assignment().topicPartitions())
                        + ",\"target\":" + partitions(m.targetAssignment()
                                .map(a -> a.topicPartitions()).orElse(Set.of()))
                        + "}");
            }
            out.append(",\"members\":[").append(String.join(",", members)).append("]}");
            System.out.println(out);
        }
    }

    private static String partitions(Collection<TopicPartition> parts) {
        Set<String> sorted = new TreeSet<>();
        for (TopicPartition tp : parts) {
            sorted.add("[" + quote(tp.topic()) + "," + tp.partition() + "]");
        }
        return "[" + String.join(",", sorted) + "]";
    }

    private static String quote(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder out = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }
}
