//! Media: RTSP ingest (one retina session per camera), the fan-out of its frames, the fMP4
//! muxer, and the LL-HLS window served from RAM.

pub mod error;
pub mod fanout;
pub mod fmp4;
pub mod frame;
pub mod hls;
pub mod ingest;
pub mod mux;
pub mod recorder;
pub mod recordings;
pub mod segbuf;
pub mod streams;
