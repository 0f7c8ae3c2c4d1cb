//! The data model shared by every part of kahu: label sets, label matchers and samples.

mod labels;
mod matcher;
mod proto;
mod sample;

pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{MatchOp, Matcher, MatcherError};
pub use proto::{
    ProtoBytePairs, ProtoFigures, ProtoLabels, ProtoPairs, encode_proto_labels, proto_labels_hash,
};
pub use sample::{STALE_NAN_BITS, Sample, is_stale_nan, stale_nan};
