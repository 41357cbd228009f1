"""What an OBD-II trouble code means, in French and English, for the fleet dashboard.

Only the common generic (SAE J2012, "P0xxx") codes a motorhome's engine sets in practice:
misfires, mixture, sensors, catalyst, EGR, evaporative system, idle, voltage. Codes whose
second character is 1 (P1xxx, P3xxx from P3400, B1, C1, U1...) are manufacturer-specific:
the garage's tool reads them, we say "code constructeur". A generic code missing here is
shown as such rather than guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# code: (français, English)
GENERIC: dict[str, tuple[str, str]] = {
    "P0010": ("Actionneur de calage d'arbre à cames (banc 1) : circuit",
              "Camshaft position actuator circuit (bank 1)"),
    "P0087": ("Pression du rail de carburant trop basse", "Fuel rail/system pressure too low"),
    "P0088": ("Pression du rail de carburant trop haute", "Fuel rail/system pressure too high"),
    "P0100": ("Débitmètre d'air : circuit", "Mass air flow circuit"),
    "P0101": ("Débitmètre d'air : plage ou performance", "Mass air flow circuit range/performance"),
    "P0102": ("Débitmètre d'air : signal bas", "Mass air flow circuit low"),
    "P0103": ("Débitmètre d'air : signal haut", "Mass air flow circuit high"),
    "P0106": ("Capteur de pression d'admission : plage ou performance",
              "Manifold absolute pressure range/performance"),
    "P0110": ("Sonde de température d'air d'admission : circuit",
              "Intake air temperature sensor circuit"),
    "P0115": ("Sonde de température du liquide de refroidissement : circuit",
              "Engine coolant temperature sensor circuit"),
    "P0116": ("Sonde de température du liquide de refroidissement : plage ou performance",
              "Engine coolant temperature circuit range/performance"),
    "P0117": ("Sonde de température du liquide de refroidissement : signal bas",
              "Engine coolant temperature circuit low"),
    "P0118": ("Sonde de température du liquide de refroidissement : signal haut",
              "Engine coolant temperature circuit high"),
    "P0120": ("Capteur de position du papillon / de la pédale : circuit",
              "Throttle/pedal position sensor circuit"),
    "P0121": ("Capteur de position du papillon : plage ou performance",
              "Throttle position sensor range/performance"),
    "P0128": ("Thermostat : température de liquide de refroidissement trop basse",
              "Coolant thermostat (coolant temperature below regulating temperature)"),
    "P0130": ("Sonde à oxygène (banc 1, sonde 1) : circuit", "O2 sensor circuit (bank 1 sensor 1)"),
    "P0133": ("Sonde à oxygène (banc 1, sonde 1) : réponse lente",
              "O2 sensor slow response (bank 1 sensor 1)"),
    "P0135": ("Sonde à oxygène (banc 1, sonde 1) : chauffage",
              "O2 sensor heater circuit (bank 1 sensor 1)"),
    "P0141": ("Sonde à oxygène (banc 1, sonde 2) : chauffage",
              "O2 sensor heater circuit (bank 1 sensor 2)"),
    "P0171": ("Mélange trop pauvre (banc 1)", "System too lean (bank 1)"),
    "P0172": ("Mélange trop riche (banc 1)", "System too rich (bank 1)"),
    "P0174": ("Mélange trop pauvre (banc 2)", "System too lean (bank 2)"),
    "P0175": ("Mélange trop riche (banc 2)", "System too rich (bank 2)"),
    "P0190": ("Capteur de pression du rail de carburant : circuit",
              "Fuel rail pressure sensor circuit"),
    "P0200": ("Injecteurs : circuit", "Injector circuit"),
    "P0201": ("Injecteur du cylindre 1 : circuit", "Injector circuit, cylinder 1"),
    "P0202": ("Injecteur du cylindre 2 : circuit", "Injector circuit, cylinder 2"),
    "P0203": ("Injecteur du cylindre 3 : circuit", "Injector circuit, cylinder 3"),
    "P0204": ("Injecteur du cylindre 4 : circuit", "Injector circuit, cylinder 4"),
    "P0217": ("Surchauffe du moteur", "Engine coolant over-temperature condition"),
    "P0219": ("Surrégime moteur", "Engine overspeed condition"),
    "P0234": ("Suralimentation excessive (turbo)", "Turbocharger overboost condition"),
    "P0299": ("Suralimentation insuffisante (turbo)", "Turbocharger underboost"),
    "P0300": ("Ratés d'allumage aléatoires ou multiples", "Random/multiple cylinder misfire"),
    "P0301": ("Ratés d'allumage, cylindre 1", "Cylinder 1 misfire detected"),
    "P0302": ("Ratés d'allumage, cylindre 2", "Cylinder 2 misfire detected"),
    "P0303": ("Ratés d'allumage, cylindre 3", "Cylinder 3 misfire detected"),
    "P0304": ("Ratés d'allumage, cylindre 4", "Cylinder 4 misfire detected"),
    "P0305": ("Ratés d'allumage, cylindre 5", "Cylinder 5 misfire detected"),
    "P0306": ("Ratés d'allumage, cylindre 6", "Cylinder 6 misfire detected"),
    "P0325": ("Capteur de cliquetis (banc 1) : circuit", "Knock sensor circuit (bank 1)"),
    "P0335": ("Capteur de position du vilebrequin : circuit",
              "Crankshaft position sensor circuit"),
    "P0340": ("Capteur de position de l'arbre à cames : circuit",
              "Camshaft position sensor circuit"),
    "P0380": ("Bougies de préchauffage : circuit", "Glow plug/heater circuit"),
    "P0400": ("Recirculation des gaz d'échappement (EGR) : débit",
              "Exhaust gas recirculation flow"),
    "P0401": ("Recirculation des gaz d'échappement (EGR) : débit insuffisant",
              "Exhaust gas recirculation flow insufficient"),
    "P0402": ("Recirculation des gaz d'échappement (EGR) : débit excessif",
              "Exhaust gas recirculation flow excessive"),
    "P0403": ("Vanne EGR : circuit de commande", "Exhaust gas recirculation control circuit"),
    "P0420": ("Catalyseur : efficacité insuffisante (banc 1)",
              "Catalyst system efficiency below threshold (bank 1)"),
    "P0430": ("Catalyseur : efficacité insuffisante (banc 2)",
              "Catalyst system efficiency below threshold (bank 2)"),
    "P0440": ("Système de recyclage des vapeurs de carburant : défaut",
              "Evaporative emission system malfunction"),
    "P0442": ("Recyclage des vapeurs de carburant : petite fuite",
              "Evaporative emission system small leak detected"),
    "P0455": ("Recyclage des vapeurs de carburant : grosse fuite (bouchon de réservoir ?)",
              "Evaporative emission system large leak detected"),
    "P0456": ("Recyclage des vapeurs de carburant : très petite fuite",
              "Evaporative emission system very small leak detected"),
    "P0461": ("Jauge de carburant : plage ou performance",
              "Fuel level sensor circuit range/performance"),
    "P0470": ("Capteur de pression d'échappement : circuit", "Exhaust pressure sensor circuit"),
    "P0480": ("Ventilateur de refroidissement 1 : circuit de commande",
              "Cooling fan 1 control circuit"),
    "P0500": ("Capteur de vitesse du véhicule : défaut", "Vehicle speed sensor malfunction"),
    "P0505": ("Régulation du ralenti : défaut", "Idle air control system malfunction"),
    "P0506": ("Régime de ralenti trop bas", "Idle control system RPM lower than expected"),
    "P0507": ("Régime de ralenti trop haut", "Idle control system RPM higher than expected"),
    "P0520": ("Capteur de pression d'huile : circuit", "Engine oil pressure sensor circuit"),
    "P0524": ("Pression d'huile moteur trop basse", "Engine oil pressure too low"),
    "P0560": ("Tension du circuit électrique : défaut", "System voltage malfunction"),
    "P0562": ("Tension du circuit électrique trop basse", "System voltage low"),
    "P0563": ("Tension du circuit électrique trop haute", "System voltage high"),
    "P0571": ("Contacteur de frein : circuit", "Brake switch circuit"),
    "P0600": ("Calculateur : liaison série", "Serial communication link"),
    "P0601": ("Calculateur : erreur de mémoire (somme de contrôle)",
              "Internal control module memory checksum error"),
    "P0603": ("Calculateur : erreur de mémoire de maintien",
              "Internal control module keep alive memory error"),
    "P0606": ("Calculateur : défaut du processeur", "Control module processor fault"),
    "P0670": ("Boîtier de préchauffage : circuit", "Glow plug control module circuit"),
    "P0700": ("Boîte de vitesses automatique : défaut signalé par son calculateur",
              "Transmission control system malfunction"),
    "P0705": ("Capteur de position du levier de vitesses : circuit",
              "Transmission range sensor circuit"),
    "P0715": ("Capteur de vitesse de turbine (boîte) : circuit",
              "Input/turbine speed sensor circuit"),
    "P0720": ("Capteur de vitesse de sortie (boîte) : circuit", "Output speed sensor circuit"),
    "P0730": ("Rapport de boîte incorrect", "Incorrect gear ratio"),
    "P0741": ("Embrayage du convertisseur de couple : performance",
              "Torque converter clutch circuit performance or stuck off"),
    "P2002": ("Filtre à particules : efficacité insuffisante (banc 1)",
              "Diesel particulate filter efficiency below threshold (bank 1)"),
    "P2463": ("Filtre à particules : accumulation de suies",
              "Diesel particulate filter restriction, soot accumulation"),
}

_CODE = re.compile(r"^[PCBU][0-3][0-9A-F]{3}$")
_SYSTEMS = {"P": ("moteur / boîte", "powertrain"), "C": ("châssis", "chassis"),
            "B": ("carrosserie", "body"), "U": ("réseau du véhicule", "network")}  # fmt: skip


@dataclass(frozen=True)
class CodeMeaning:
    code: str
    fr: str
    en: str
    known: bool  # False: manufacturer-specific or not in our table


def _manufacturer(code: str) -> bool:
    """SAE J2012: a second character of 1 is the maker's; so are P3400–P39FF, and the
    powertrain's P2/U0 remainder is generic. B/C/U with 2 are manufacturer's too."""
    kind, second = code[0], code[1]
    if second == "1":
        return True
    if kind in "BCU" and second == "2":
        return True
    return kind == "P" and second == "3" and code[2] >= "4"


def meaning(code: str) -> CodeMeaning:
    """The meaning of an OBD-II trouble code, or what we can say about it."""
    code = code.strip().upper()
    if code in GENERIC:
        fr, en = GENERIC[code]
        return CodeMeaning(code, fr, en, True)
    if not _CODE.match(code):
        return CodeMeaning(code, "code inconnu", "unknown code", False)
    system_fr, system_en = _SYSTEMS[code[0]]
    if _manufacturer(code):
        return CodeMeaning(code, f"code constructeur ({system_fr})",
                           f"manufacturer-specific code ({system_en})", False)  # fmt: skip
    return CodeMeaning(code, f"code générique ({system_fr}) : signification non répertoriée ici",
                       f"generic code ({system_en}), meaning not listed here", False)
