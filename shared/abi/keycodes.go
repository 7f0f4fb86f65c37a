// The key table: W3C UI Events KeyboardEvent.code names and their USB HID
// usages (usage page 7), as listed in the UI Events code specification.

package abi

// KeyCode identifies a physical key. Its value is the key's USB HID usage
// (usage page 7), which is also how the W3C KeyboardEvent.code names are
// defined, so browser codes map one to one and the numbers never change.
type KeyCode uint32

// Key codes, named after their KeyboardEvent.code names.
const (
	CodeKeyA            KeyCode = 0x04
	CodeKeyB            KeyCode = 0x05
	CodeKeyC            KeyCode = 0x06
	CodeKeyD            KeyCode = 0x07
	CodeKeyE            KeyCode = 0x08
	CodeKeyF            KeyCode = 0x09
	CodeKeyG            KeyCode = 0x0A
	CodeKeyH            KeyCode = 0x0B
	CodeKeyI            KeyCode = 0x0C
	CodeKeyJ            KeyCode = 0x0D
	CodeKeyK            KeyCode = 0x0E
	CodeKeyL            KeyCode = 0x0F
	CodeKeyM            KeyCode = 0x10
	CodeKeyN            KeyCode = 0x11
	CodeKeyO            KeyCode = 0x12
	CodeKeyP            KeyCode = 0x13
	CodeKeyQ            KeyCode = 0x14
	CodeKeyR            KeyCode = 0x15
	CodeKeyS            KeyCode = 0x16
	CodeKeyT            KeyCode = 0x17
	CodeKeyU            KeyCode = 0x18
	CodeKeyV            KeyCode = 0x19
	CodeKeyW            KeyCode = 0x1A
	CodeKeyX            KeyCode = 0x1B
	CodeKeyY            KeyCode = 0x1C
	CodeKeyZ            KeyCode = 0x1D
	CodeDigit1          KeyCode = 0x1E
	CodeDigit2          KeyCode = 0x1F
	CodeDigit3          KeyCode = 0x20
	CodeDigit4          KeyCode = 0x21
	CodeDigit5          KeyCode = 0x22
	CodeDigit6          KeyCode = 0x23
	CodeDigit7          KeyCode = 0x24
	CodeDigit8          KeyCode = 0x25
	CodeDigit9          KeyCode = 0x26
	CodeDigit0          KeyCode = 0x27
	CodeEnter           KeyCode = 0x28
	CodeEscape          KeyCode = 0x29
	CodeBackspace       KeyCode = 0x2A
	CodeTab             KeyCode = 0x2B
	CodeSpace           KeyCode = 0x2C
	CodeMinus           KeyCode = 0x2D
	CodeEqual           KeyCode = 0x2E
	CodeBracketLeft     KeyCode = 0x2F
	CodeBracketRight    KeyCode = 0x30
	CodeBackslash       KeyCode = 0x31
	CodeIntlHash        KeyCode = 0x32
	CodeSemicolon       KeyCode = 0x33
	CodeQuote           KeyCode = 0x34
	CodeBackquote       KeyCode = 0x35
	CodeComma           KeyCode = 0x36
	CodePeriod          KeyCode = 0x37
	CodeSlash           KeyCode = 0x38
	CodeCapsLock        KeyCode = 0x39
	CodeF1              KeyCode = 0x3A
	CodeF2              KeyCode = 0x3B
	CodeF3              KeyCode = 0x3C
	CodeF4              KeyCode = 0x3D
	CodeF5              KeyCode = 0x3E
	CodeF6              KeyCode = 0x3F
	CodeF7              KeyCode = 0x40
	CodeF8              KeyCode = 0x41
	CodeF9              KeyCode = 0x42
	CodeF10             KeyCode = 0x43
	CodeF11             KeyCode = 0x44
	CodeF12             KeyCode = 0x45
	CodePrintScreen     KeyCode = 0x46
	CodeScrollLock      KeyCode = 0x47
	CodePause           KeyCode = 0x48
	CodeInsert          KeyCode = 0x49
	CodeHome            KeyCode = 0x4A
	CodePageUp          KeyCode = 0x4B
	CodeDelete          KeyCode = 0x4C
	CodeEnd             KeyCode = 0x4D
	CodePageDown        KeyCode = 0x4E
	CodeArrowRight      KeyCode = 0x4F
	CodeArrowLeft       KeyCode = 0x50
	CodeArrowDown       KeyCode = 0x51
	CodeArrowUp         KeyCode = 0x52
	CodeNumLock         KeyCode = 0x53
	CodeNumpadDivide    KeyCode = 0x54
	CodeNumpadMultiply  KeyCode = 0x55
	CodeNumpadSubtract  KeyCode = 0x56
	CodeNumpadAdd       KeyCode = 0x57
	CodeNumpadEnter     KeyCode = 0x58
	CodeNumpad1         KeyCode = 0x59
	CodeNumpad2         KeyCode = 0x5A
	CodeNumpad3         KeyCode = 0x5B
	CodeNumpad4         KeyCode = 0x5C
	CodeNumpad5         KeyCode = 0x5D
	CodeNumpad6         KeyCode = 0x5E
	CodeNumpad7         KeyCode = 0x5F
	CodeNumpad8         KeyCode = 0x60
	CodeNumpad9         KeyCode = 0x61
	CodeNumpad0         KeyCode = 0x62
	CodeNumpadDecimal   KeyCode = 0x63
	CodeIntlBackslash   KeyCode = 0x64
	CodeContextMenu     KeyCode = 0x65
	CodePower           KeyCode = 0x66
	CodeNumpadEqual     KeyCode = 0x67
	CodeF13             KeyCode = 0x68
	CodeF14             KeyCode = 0x69
	CodeF15             KeyCode = 0x6A
	CodeF16             KeyCode = 0x6B
	CodeF17             KeyCode = 0x6C
	CodeF18             KeyCode = 0x6D
	CodeF19             KeyCode = 0x6E
	CodeF20             KeyCode = 0x6F
	CodeF21             KeyCode = 0x70
	CodeF22             KeyCode = 0x71
	CodeF23             KeyCode = 0x72
	CodeF24             KeyCode = 0x73
	CodeHelp            KeyCode = 0x75
	CodeUndo            KeyCode = 0x7A
	CodeCut             KeyCode = 0x7B
	CodeCopy            KeyCode = 0x7C
	CodePaste           KeyCode = 0x7D
	CodeFind            KeyCode = 0x7E
	CodeAudioVolumeMute KeyCode = 0x7F
	CodeAudioVolumeUp   KeyCode = 0x80
	CodeAudioVolumeDown KeyCode = 0x81
	CodeNumpadComma     KeyCode = 0x85
	CodeIntlRo          KeyCode = 0x87
	CodeKanaMode        KeyCode = 0x88
	CodeIntlYen         KeyCode = 0x89
	CodeConvert         KeyCode = 0x8A
	CodeNonConvert      KeyCode = 0x8B
	CodeLang1           KeyCode = 0x90
	CodeLang2           KeyCode = 0x91
	CodeControlLeft     KeyCode = 0xE0
	CodeShiftLeft       KeyCode = 0xE1
	CodeAltLeft         KeyCode = 0xE2
	CodeMetaLeft        KeyCode = 0xE3
	CodeControlRight    KeyCode = 0xE4
	CodeShiftRight      KeyCode = 0xE5
	CodeAltRight        KeyCode = 0xE6
	CodeMetaRight       KeyCode = 0xE7
)

var keyNames = map[KeyCode]string{
	CodeKeyA:            "KeyA",
	CodeKeyB:            "KeyB",
	CodeKeyC:            "KeyC",
	CodeKeyD:            "KeyD",
	CodeKeyE:            "KeyE",
	CodeKeyF:            "KeyF",
	CodeKeyG:            "KeyG",
	CodeKeyH:            "KeyH",
	CodeKeyI:            "KeyI",
	CodeKeyJ:            "KeyJ",
	CodeKeyK:            "KeyK",
	CodeKeyL:            "KeyL",
	CodeKeyM:            "KeyM",
	CodeKeyN:            "KeyN",
	CodeKeyO:            "KeyO",
	CodeKeyP:            "KeyP",
	CodeKeyQ:            "KeyQ",
	CodeKeyR:            "KeyR",
	CodeKeyS:            "KeyS",
	CodeKeyT:            "KeyT",
	CodeKeyU:            "KeyU",
	CodeKeyV:            "KeyV",
	CodeKeyW:            "KeyW",
	CodeKeyX:            "KeyX",
	CodeKeyY:            "KeyY",
	CodeKeyZ:            "KeyZ",
	CodeDigit1:          "Digit1",
	CodeDigit2:          "Digit2",
	CodeDigit3:          "Digit3",
	CodeDigit4:          "Digit4",
	CodeDigit5:          "Digit5",
	CodeDigit6:          "Digit6",
	CodeDigit7:          "Digit7",
	CodeDigit8:          "Digit8",
	CodeDigit9:          "Digit9",
	CodeDigit0:          "Digit0",
	CodeEnter:           "Enter",
	CodeEscape:          "Escape",
	CodeBackspace:       "Backspace",
	CodeTab:             "Tab",
	CodeSpace:           "Space",
	CodeMinus:           "Minus",
	CodeEqual:           "Equal",
	CodeBracketLeft:     "BracketLeft",
	CodeBracketRight:    "BracketRight",
	CodeBackslash:       "Backslash",
	CodeIntlHash:        "IntlHash",
	CodeSemicolon:       "Semicolon",
	CodeQuote:           "Quote",
	CodeBackquote:       "Backquote",
	CodeComma:           "Comma",
	CodePeriod:          "Period",
	CodeSlash:           "Slash",
	CodeCapsLock:        "CapsLock",
	CodeF1:              "F1",
	CodeF2:              "F2",
	CodeF3:              "F3",
	CodeF4:              "F4",
	CodeF5:              "F5",
	CodeF6:              "F6",
	CodeF7:              "F7",
	CodeF8:              "F8",
	CodeF9:              "F9",
	CodeF10:             "F10",
	CodeF11:             "F11",
	CodeF12:             "F12",
	CodePrintScreen:     "PrintScreen",
	CodeScrollLock:      "ScrollLock",
	CodePause:           "Pause",
	CodeInsert:          "Insert",
	CodeHome:            "Home",
	CodePageUp:          "PageUp",
	CodeDelete:          "Delete",
	CodeEnd:             "End",
	CodePageDown:        "PageDown",
	CodeArrowRight:      "ArrowRight",
	CodeArrowLeft:       "ArrowLeft",
	CodeArrowDown:       "ArrowDown",
	CodeArrowUp:         "ArrowUp",
	CodeNumLock:         "NumLock",
	CodeNumpadDivide:    "NumpadDivide",
	CodeNumpadMultiply:  "NumpadMultiply",
	CodeNumpadSubtract:  "NumpadSubtract",
	CodeNumpadAdd:       "NumpadAdd",
	CodeNumpadEnter:     "NumpadEnter",
	CodeNumpad1:         "Numpad1",
	CodeNumpad2:         "Numpad2",
	CodeNumpad3:         "Numpad3",
	CodeNumpad4:         "Numpad4",
	CodeNumpad5:         "Numpad5",
	CodeNumpad6:         "Numpad6",
	CodeNumpad7:         "Numpad7",
	CodeNumpad8:         "Numpad8",
	CodeNumpad9:         "Numpad9",
	CodeNumpad0:         "Numpad0",
	CodeNumpadDecimal:   "NumpadDecimal",
	CodeIntlBackslash:   "IntlBackslash",
	CodeContextMenu:     "ContextMenu",
	CodePower:           "Power",
	CodeNumpadEqual:     "NumpadEqual",
	CodeF13:             "F13",
	CodeF14:             "F14",
	CodeF15:             "F15",
	CodeF16:             "F16",
	CodeF17:             "F17",
	CodeF18:             "F18",
	CodeF19:             "F19",
	CodeF20:             "F20",
	CodeF21:             "F21",
	CodeF22:             "F22",
	CodeF23:             "F23",
	CodeF24:             "F24",
	CodeHelp:            "Help",
	CodeUndo:            "Undo",
	CodeCut:             "Cut",
	CodeCopy:            "Copy",
	CodePaste:           "Paste",
	CodeFind:            "Find",
	CodeAudioVolumeMute: "AudioVolumeMute",
	CodeAudioVolumeUp:   "AudioVolumeUp",
	CodeAudioVolumeDown: "AudioVolumeDown",
	CodeNumpadComma:     "NumpadComma",
	CodeIntlRo:          "IntlRo",
	CodeKanaMode:        "KanaMode",
	CodeIntlYen:         "IntlYen",
	CodeConvert:         "Convert",
	CodeNonConvert:      "NonConvert",
	CodeLang1:           "Lang1",
	CodeLang2:           "Lang2",
	CodeControlLeft:     "ControlLeft",
	CodeShiftLeft:       "ShiftLeft",
	CodeAltLeft:         "AltLeft",
	CodeMetaLeft:        "MetaLeft",
	CodeControlRight:    "ControlRight",
	CodeShiftRight:      "ShiftRight",
	CodeAltRight:        "AltRight",
	CodeMetaRight:       "MetaRight",
}
