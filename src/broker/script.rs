//! The script that appends a batch of one topic's entries: it numbers each event with
//! the topic's next seq (the entry id is `{seq}-0`), writes loss markers after the last
//! seq (`{seq}-*`), keeps the epoch, trims the stream, and applies a batch once even
//! when it is sent again after a lost reply.

use crate::wire::Topic;

/// `KEYS`: seq, stream, epoch, producer. `ARGV`: max length, a fresh epoch (used when
/// the topic has none, or lost its counter), the batch number, the kinds of the entries
/// (one letter each: `e` an event, `m` a loss marker), then the entries' JSON. Returns the first seq given
/// (0 when none, or when the batch was applied before) and the epoch.
pub(crate) const APPEND: &str = r"
local done = redis.call('GET', KEYS[4])
local epoch = redis.call('GET', KEYS[3])
if done and tonumber(done) >= tonumber(ARGV[3]) then
  return {0, epoch or ''}
end
if (not epoch) or redis.call('EXISTS', KEYS[1]) == 0 then
  epoch = ARGV[2]
  redis.call('SET', KEYS[3], epoch)
end
local kinds = ARGV[4]
local _, events = string.gsub(kinds, 'e', 'e')
local last = redis.call('INCRBY', KEYS[1], events)
local seq = last - events
local first = 0
if events > 0 then first = seq + 1 end
for i = 1, #kinds do
  if string.byte(kinds, i) == 101 then
    seq = seq + 1
    redis.call('XADD', KEYS[2], seq .. '-0', 'e', ARGV[4 + i])
  else
    redis.call('XADD', KEYS[2], seq .. '-*', 'm', ARGV[4 + i])
  end
end
redis.call('XTRIM', KEYS[2], 'MAXLEN', '~', ARGV[1])
redis.call('SET', KEYS[4], ARGV[3], 'EX', 86400)
return {first, epoch}
";

/// `KEYS`: seq, epoch. `ARGV`: a fresh epoch. Makes sure the topic has an epoch (and a
/// counter), with the rule of [`APPEND`]: a topic without an epoch, or that lost its
/// counter, gets the fresh one (and a counter at 0 when it had none). A gateway calls it
/// before serving a topic, so that the epoch its clients are given is the one the
/// workers' events will carry. Returns the epoch and the counter (the last seq given).
pub(crate) const ENSURE_EPOCH: &str = r"
local epoch = redis.call('GET', KEYS[2])
if (not epoch) or redis.call('EXISTS', KEYS[1]) == 0 then
  epoch = ARGV[1]
  redis.call('SET', KEYS[2], epoch)
  redis.call('SET', KEYS[1], 0, 'NX')
end
return {epoch, redis.call('GET', KEYS[1])}
";

/// The keys of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicKeys {
    pub(crate) seq: String,
    pub(crate) stream: String,
    pub(crate) epoch: String,
}

impl TopicKeys {
    /// The keys of `topic` under `prefix`; the topic is in braces (a Redis Cluster hash
    /// tag), so a topic's keys live on one node.
    pub(crate) fn new(prefix: &str, topic: &Topic) -> Self {
        let base = format!("{prefix}:{{{topic}}}");
        Self {
            seq: format!("{base}:seq"),
            stream: format!("{base}:stream"),
            epoch: format!("{base}:epoch"),
        }
    }

    /// The key where producer `id` records the last batch it applied on this topic.
    pub(crate) fn producer(&self, id: &str) -> String {
        format!("{}:producer:{id}", self.seq.trim_end_matches(":seq"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topics_keys_share_one_hash_tag() {
        let keys = TopicKeys::new("bts", &Topic::BACKTEST);
        assert_eq!(keys.stream, "bts:{backtest}:stream");
        assert_eq!(keys.seq, "bts:{backtest}:seq");
        assert_eq!(keys.epoch, "bts:{backtest}:epoch");
        assert_eq!(keys.producer("p1"), "bts:{backtest}:producer:p1");
    }
}
