{
  "targets": [
    {
      "target_name": "sealcast",
      "sources": [
        "native/aead.cc",
        "native/binding.cc",
        "native/chacha_lanes.cc",
        "native/control_binding.cc",
        "native/control_crypto.cc",
        "native/control_listener.cc",
        "native/open_in_order.cc",
        "native/packet_scan.cc",
        "native/poly1305_lanes.cc",
        "native/udp.cc",
        "native/udp_watch.cc"
      ],
      "include_dirs": [
        "<(node_root_dir)/include/node",
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      "cflags_cc": [ "-std=c++17", "-O3", "-fexceptions", "-fvisibility=hidden", "-Wall", "-Wextra" ],
      "cflags_cc!": [ "-fno-exceptions" ],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17"
      }
    }
  ]
}
