//! Any bytes through the GGUF parser: it must return an error or a file
//! whose every metadata value and tensor view can be read without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rocmforge::gguf::GgufFile;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes(data.to_vec()) else {
        return;
    };
    let md = file.metadata();
    for (key, value) in md.iter() {
        let _ = value.to_json();
        let _ = value.to_json_summary(4);
        let _ = value.summary(4);
        let _ = md.get_u64(key);
        let _ = md.get_f32(key);
        let _ = md.get_str_array(key);
        let _ = md.get_i64_array(key);
    }
    let mut checksum = 0u8;
    for info in file.tensors() {
        let view = file.tensor(&info.name).expect("listed tensors exist");
        assert_eq!(view.data.len() as u64, info.size);
        for i in 0..info.n_rows().min(64) as usize {
            checksum ^= view.row(i).iter().fold(0, |a, b| a ^ b);
        }
    }
    std::hint::black_box(checksum);
});
