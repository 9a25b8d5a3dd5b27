{
  "targets": [
    {
      "target_name": "sealcast",
      "sources": [
        "native/aead.cc",
        "native/binding.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_ADDON_API_ENABLE_MAYBE"
      ],
      "cflags_cc": [ "-std=c++17", "-O3", "-fexceptions", "-Wall", "-Wextra" ],
      "cflags_cc!": [ "-fno-exceptions" ],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17"
      }
    }
  ]
}
