//! `rf_chat_apply_template` renders SmolLM2's own template exactly as llama.cpp's
//! `llama_chat_apply_template` does (tests/fixtures/reference/smollm2/chat_template.json).

mod common;

use std::ptr;

use common::SMOLLM2;
use rocmforge::ffi::*;

fn load() -> *mut rf_model {
    common::ffi::load_model(SMOLLM2)
}

fn render(model: *const rf_model, messages: &[(String, String)], add_assistant: bool) -> String {
    let raw: Vec<rf_chat_message> = messages
        .iter()
        .map(|(role, content)| rf_chat_message {
            role: role.as_ptr().cast(),
            role_len: role.len(),
            content: content.as_ptr().cast(),
            content_len: content.len(),
        })
        .collect();
    let mut needed = 0usize;
    // SAFETY: NULL buffer of capacity 0 asks for the size needed.
    let status = unsafe {
        rf_chat_apply_template(
            model,
            raw.as_ptr(),
            raw.len(),
            add_assistant,
            ptr::null_mut(),
            0,
            &mut needed,
        )
    };
    assert_eq!(status, rf_status::RF_ERR_BUFFER_TOO_SMALL);
    let mut buf = vec![0u8; needed];
    let mut len = 0usize;
    // SAFETY: `buf` holds `needed` bytes.
    let status = unsafe {
        rf_chat_apply_template(
            model,
            raw.as_ptr(),
            raw.len(),
            add_assistant,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut len,
        )
    };
    assert_eq!(status, rf_status::RF_OK);
    assert_eq!(len, needed);
    String::from_utf8(buf).unwrap()
}

#[test]
fn smollm2_template_matches_llama_cpp() {
    let model = load();
    let cases = common::read_json("reference/smollm2/chat_template.json");
    let cases = cases.as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let messages: Vec<(String, String)> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().unwrap().to_owned(),
                    m["content"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let add = case["add_generation_prompt"].as_bool().unwrap();
        assert_eq!(
            render(model, &messages, add),
            case["rendered"].as_str().unwrap()
        );
    }
    // SAFETY: `model` came from rf_model_load and is freed once.
    unsafe { rf_model_free(model) };
}
