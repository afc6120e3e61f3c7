//! Chat-template seeds: each built-in family's marker, Jinja templates of the shapes real
//! models use (system prompts, role checks, `raise_exception`, namespaces, filters), the
//! ChatML fallback, and templates that would run long, exhaust memory or overflow the
//! stack without the limits and guards (nested loops, doubled text and lists, a namespace
//! holding itself, shared nested lists, folded constants, views of views, deep chains).

use rocmforge_fuzz::chat_input::{ChatInput, encode};

use super::Seeds;

const TEMPLATES: [(&str, &str); 17] = [
    (
        "chatml-marker",
        "{% for m in messages %}<|im_start|>{{ m.role }}{% endfor %}",
    ),
    ("gemma-marker", "<start_of_turn>"),
    ("llama3-marker", "<|start_header_id|>"),
    (
        "system-first",
        "{%- if messages[0]['role'] == 'system' %}{%- set system = messages[0]['content'] %}\
         {%- endif %}{%- if system is defined -%}{{- '<|system|>' + system + '<|end|>' -}}\
         {%- endif -%}{%- for m in messages -%}{%- if m['role'] != 'system' -%}\
         {{- '<|' + m['role'] + '|>' + m['content'] + '<|end|>' -}}{%- endif -%}{%- endfor -%}\
         {%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- else -%}{{- eos_token -}}\
         {%- endif -%}",
    ),
    (
        "alternating-roles",
        "{{ bos_token }}{% for m in messages %}{% if (m['role'] == 'user') != \
         (loop.index0 % 2 == 0) %}{{ raise_exception('roles must alternate') }}{% endif %}\
         {% if m['role'] == 'user' %}[INST] {{ m['content'] | trim }} [/INST]{% else %}\
         {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}",
    ),
    (
        "namespace-and-filters",
        "{% set ns = namespace(count=0, last='') %}{% for m in messages %}\
         {% set ns.count = ns.count + m.content | length %}{% set ns.last = m.role %}\
         {{ loop.index }}/{{ messages | length }} {{ m.role | capitalize }}: \
         {{ m.content | replace('\\n', ' ') | lower }}\n{% endfor %}{{ ns.count }} {{ ns.last }}\
         {{ messages | map(attribute='role') | join(',') }}",
    ),
    (
        "nested-loops",
        "{% for i in range(200) %}{% for m in messages %}{{ m.content[:3] }}{% endfor %}\
         {% endfor %}",
    ),
    (
        "doubling-string",
        "{% set ns = namespace(s='ab') %}{% for i in range(30) %}{% set ns.s = ns.s ~ ns.s %}\
         {% endfor %}{{ ns.s | length }}",
    ),
    (
        "lazy-list-doubling",
        "{% set ns = namespace(l=[1]) %}{% for i in range(64) %}{% set ns.l = ns.l + ns.l %}\
         {% endfor %}{{ ns.l | length }}",
    ),
    (
        "self-namespace",
        "{% set ns = namespace(a=0) %}{% set ns.a = ns %}{{ ns }}",
    ),
    (
        "namespace-items",
        "{% set ns = namespace(a=1) %}{% set ns.b = ns | items %}{{ ns }} {{ ns.b | length }}",
    ),
    (
        "shared-nested-lists",
        "{% set a = [1] %}{% for i in range(3) %}{% set b = [a, a] %}{% endfor %}\
         {% set a = [a, a] %}{% set a = [a, a] %}{% set a = [a, a] %}{{ a == [a] }} {{ a }}",
    ),
    (
        "folded-constants",
        "{{ 2 in [1] * 10**3 }} {{ [1, 2] * 3 == [1, 2] * 3 }} {{ ([1] * 4) ~ '' }} {{ -(-1) }}",
    ),
    (
        "views-of-views",
        "{% set l = messages[0:] %}{% set l = l[1:] + l[:1] %}{% set d = {'a': 1} | chain({'b': 2}) %}\
         {{ l | map(attribute='role') | join(',') }} {{ d.b }} {{ l | reverse | first }}",
    ),
    (
        "macros-and-blocks",
        "{% macro m(x, n) %}{% if n %}{{ m([x], n - 1) }}{% else %}{{ x }}{% endif %}{% endmacro %}\
         {% block b %}{{ m(1, 3) }}{% endblock %}{% for x in [[1, [2]]] recursive %}\
         {% if x is iterable %}{{ loop(x) }}{% else %}{{ x }}{% endif %}{% endfor %}",
    ),
    (
        "python-methods",
        "{% for m in messages %}{{ '{:>8}|{:.3f}|{{}}'.format(m.role, 1.5) }}\
         {{ m.content.strip().replace('a', 'aa').split(' ') | tojson(indent=2) }}\
         {{ m | tojson(sort_keys=true) }}{% endfor %}{{ strftime_now('%Y') | length }}",
    ),
    ("syntax-error", "{% for m in messages %}{{ m.content }"),
];

pub fn seeds() -> Seeds {
    let conversation = vec![
        ("system".to_owned(), "Be brief.".to_owned()),
        ("user".to_owned(), "Hi! <|im_end|> {{ 7 * 7 }}".to_owned()),
        ("assistant".to_owned(), "  Hello.\n".to_owned()),
        ("user".to_owned(), "caf\u{e9} \u{1f642}".to_owned()),
    ];
    let mut seeds: Seeds = TEMPLATES
        .iter()
        .enumerate()
        .map(|(i, (name, template))| {
            let input = ChatInput {
                add_assistant: i % 2 == 0,
                template: Some((*template).to_owned()),
                bos: "<s>".into(),
                eos: "</s>".into(),
                messages: conversation.clone(),
            };
            ((*name).to_owned(), encode(&input))
        })
        .collect();
    let fallback = ChatInput {
        add_assistant: true,
        template: None,
        messages: conversation[1..2].to_vec(),
        ..ChatInput::default()
    };
    seeds.push(("no-template".into(), encode(&fallback)));
    seeds
}
